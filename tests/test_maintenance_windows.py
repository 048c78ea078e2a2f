"""Maintenance windows of a connection: a run that would use the connection during one waits queued, shown as
"waiting for the maintenance window of <connection> until 02:00", and is claimed when it ends; a schedule firing
meanwhile is folded into the waiting run. The moment is passed into the functions that decide (claims here go
through the workers' entry point in this process); tests/test_maintenance_windows_cluster.py shows it on a real
cluster."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from accounts.models import UserPreference
from connections import maintenance
from connections.models import MaintenanceWindow
from projects import scheduling
from runs import execution, orchestration
from runs.models import Run
from tests import factories

pytestmark = pytest.mark.django_db
UTC, BERLIN = dt.timezone.utc, ZoneInfo("Europe/Berlin")
MONDAY_8 = dt.datetime(2024, 6, 3, 8, 0, tzinfo=UTC)  # the scheduling tests' clock


def weekly(days, start, end, zone="Europe/Berlin", **fields):
    return MaintenanceWindow(kind="weekly", days=days, start_time=dt.time(*start), end_time=dt.time(*end),
                             time_zone=zone, **fields)


def berlin(*args):
    return dt.datetime(*args, tzinfo=BERLIN)


# --- the decision ------------------------------------------------------------------------------------------

def test_a_weekly_window_crossing_midnight_holds_from_its_start_day_into_the_next_in_its_own_zone():
    friday_night = weekly("4", (22, 0), (2, 0))  # Fridays 22:00 to Saturday 02:00, Berlin time
    end = berlin(2026, 12, 5, 2, 0)  # Saturday; CET is UTC+1 in December
    assert end.astimezone(UTC) == dt.datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    assert friday_night.closed_until(berlin(2026, 12, 4, 21, 59)) is None
    assert friday_night.closed_until(berlin(2026, 12, 4, 22, 0)) == end
    assert friday_night.closed_until(dt.datetime(2026, 12, 4, 21, 30, tzinfo=UTC)) == end, "22:30 in Berlin"
    assert friday_night.closed_until(berlin(2026, 12, 5, 1, 59)) == end, "after midnight, the day after its day"
    assert friday_night.closed_until(berlin(2026, 12, 5, 2, 0)) is None
    assert friday_night.closed_until(berlin(2026, 12, 5, 23, 0)) is None, "Saturday is not one of its days"
    assert friday_night.closed_until(berlin(2026, 12, 3, 23, 0)) is None, "nor Thursday"
    # In summer the same wall times are an hour earlier in UTC (CEST, UTC+2).
    assert friday_night.closed_until(dt.datetime(2026, 7, 3, 20, 30, tzinfo=UTC)) == \
        dt.datetime(2026, 7, 4, 0, 0, tzinfo=UTC)
    assert friday_night.closed_until(dt.datetime(2026, 7, 3, 19, 59, tzinfo=UTC)) is None


def test_a_window_over_the_spring_clock_change_ends_at_its_wall_time():
    saturday_night = weekly("5", (22, 0), (3, 0))  # 2026-03-29 02:00 CET jumps to 03:00 CEST
    end = saturday_night.closed_until(berlin(2026, 3, 28, 23, 0))
    assert end == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "03:00 CEST: four hours after 22:00 CET, not five"


def test_windows_that_follow_one_another_are_joined_and_a_one_off_window_holds_once():
    evening, night = weekly("0", (20, 0), (23, 0)), weekly("0", (22, 30), (1, 0))
    once = MaintenanceWindow(kind="once", starts_at=berlin(2026, 12, 1, 10, 0), ends_at=berlin(2026, 12, 1, 12, 0),
                             time_zone="Europe/Berlin")
    monday_21 = berlin(2026, 11, 30, 21, 0)
    assert maintenance.closed_until([evening, night], monday_21) == berlin(2026, 12, 1, 1, 0)
    assert maintenance.closed_until([evening, night, once], berlin(2026, 12, 1, 11, 0)) == berlin(2026, 12, 1, 12, 0)
    assert maintenance.closed_until([once], berlin(2026, 12, 1, 12, 0)) is None
    assert str(night) == "Mon 22:30-01:00 (next day) Europe/Berlin"
    assert str(once) == "2026-12-01 10:00 - 2026-12-01 12:00 Europe/Berlin"


@pytest.mark.parametrize("fields, field", [
    ({"kind": "weekly", "days": "", "start_time": dt.time(1), "end_time": dt.time(2)}, "days"),
    ({"kind": "weekly", "days": "1", "start_time": dt.time(1), "end_time": dt.time(1)}, "end_time"),
    ({"kind": "weekly", "days": "1", "start_time": dt.time(1), "end_time": dt.time(2), "time_zone": "Mars/Base"},
     "time_zone"),
    ({"kind": "once", "starts_at": MONDAY_8, "ends_at": MONDAY_8}, "ends_at"),
    ({"kind": "once", "ends_at": MONDAY_8}, "starts_at"),
])
def test_a_window_that_cannot_hold_is_refused_by_field(fields, field):
    with pytest.raises(ValidationError) as refused:
        maintenance.validate(MaintenanceWindow(**{"time_zone": "UTC", **fields}))
    assert field in refused.value.message_dict


# --- the claim ----------------------------------------------------------------------------------------------

def claim(now, worker=1):
    return orchestration.claim_next(f"w:{worker}:1", now=now)


@pytest.fixture
def window(source_db):
    """One hour of maintenance on the source from MONDAY_8."""
    return source_db.maintenance_windows.create(kind="once", starts_at=MONDAY_8,
                                                ends_at=MONDAY_8 + dt.timedelta(hours=1), time_zone="UTC")


def test_the_claim_refuses_a_run_during_its_connections_window_and_takes_it_after(window, add_task):
    held = factories.run(add_task("Orders"))
    assert claim(MONDAY_8 + dt.timedelta(minutes=30)) is None
    assert claim(MONDAY_8 + dt.timedelta(minutes=59, seconds=59)) is None
    assert claim(MONDAY_8 + dt.timedelta(hours=1)) == held.pk
    assert Run.objects.get(pk=held.pk).status == "running"


def test_runs_not_using_the_connection_go_on_and_a_destination_in_maintenance_holds_its_run(
        window, add_task, organization, tmp_path):
    other_db = factories.sqlite_source(organization, tmp_path / "other.sqlite3", "CREATE TABLE t (x int)",
                                       name="Other DB")
    vendor = factories.local_folder(organization, tmp_path / "vendor", name="Vendor drop")
    project = add_task("Orders").project
    held = factories.run(add_task("Orders again"))
    to_vendor = factories.task(project, "To vendor", source_connection=other_db, query="SELECT 1")
    to_vendor.destinations.create(connection=vendor, folder="in", position=0)
    vendor.maintenance_windows.create(kind="weekly", days="0", start_time=dt.time(7), end_time=dt.time(9, 30),
                                      time_zone="UTC")
    free = factories.run(factories.task(project, "Elsewhere", source_connection=other_db, query="SELECT 1"))
    held_by_destination = factories.run(to_vendor)
    during = MONDAY_8 + dt.timedelta(minutes=30)
    assert [claim(during, n) for n in range(3)] == [free.pk, None, None]
    assert claim(MONDAY_8 + dt.timedelta(hours=1)) == held.pk, "the source's window is over, not the vendor's"
    assert claim(MONDAY_8 + dt.timedelta(hours=1)) is None
    assert claim(MONDAY_8 + dt.timedelta(hours=1, minutes=30), 2) == held_by_destination.pk


def test_a_run_held_by_a_window_is_left_to_sleep_and_woken_as_soon_as_it_ends(window, add_task):
    held = factories.run(add_task("Orders"))
    end = MONDAY_8 + dt.timedelta(hours=1)
    assert not orchestration.claimable(end - dt.timedelta(seconds=1)).filter(pk=held.pk).exists()
    assert execution.kick_stalled_runs(now=end - dt.timedelta(seconds=1)) == 0, "no worker woken for nothing"
    assert orchestration.claimable(end).filter(pk=held.pk).exists()
    # The run was queued "just now" as these moments go: woken because its window ended, not for its age.
    assert held.created_at > end
    assert execution.kick_stalled_runs(now=end + dt.timedelta(seconds=1)) == 1
    assert execution.kick_stalled_runs(now=end + dt.timedelta(seconds=6)) == 0, "only once its window ended"


def test_triggers_firing_during_a_window_are_folded_into_the_one_waiting_run(window, project, add_task,
                                                                           add_trigger):
    task = add_task("Orders", max_instances=3)
    trigger = add_trigger(project, minute="*/10")
    due = scheduling.arm(trigger, MONDAY_8)
    for _ in range(4):  # 08:10, 08:20, 08:30, 08:40
        scheduling.fire_trigger(trigger.pk, now=due, execute=False)
        trigger.refresh_from_db()
        due = trigger.next_run_at
    runs = list(task.runs.all())
    assert [run.status for run in runs] == ["queued"], "one run, not one per trigger"
    lines = [line.message for line in runs[0].log_lines.all()]
    folded = [line for line in lines if "folded into this run" in line]
    assert len(folded) == 3 and "waits for the maintenance window of Orders DB" in folded[0], lines
    assert claim(MONDAY_8 + dt.timedelta(hours=1)) == runs[0].pk
    scheduling.fire_trigger(trigger.pk, now=MONDAY_8 + dt.timedelta(hours=1, minutes=1), execute=False)
    assert task.runs.count() == 2, "after the window a trigger queues as usual"


# --- the pages ------------------------------------------------------------------------------------------------

def test_the_wait_is_shown_with_the_windows_end_in_the_viewers_zone(client, owner, source_db, add_task):
    now = dt.datetime.now(UTC)
    source_db.maintenance_windows.create(kind="once", starts_at=now - dt.timedelta(minutes=5),
                                         ends_at=now + dt.timedelta(hours=2), time_zone="UTC")
    UserPreference.objects.create(user=owner, time_zone="Asia/Kolkata")  # UTC+05:30
    task = add_task("Orders")
    waiting = factories.run(task)
    end = (now + dt.timedelta(hours=2)).astimezone(ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    client.force_login(owner)
    expected = "waiting for the maintenance window of Orders DB until <time"
    for page in (f"/runs/{waiting.pk}/", f"/tasks/{task.pk}/"):
        html = client.get(page).content.decode()
        assert expected in html and f">{end} IST</time>" in html, page
    assert "in maintenance until <time" in client.get(f"/connections/{source_db.pk}/").content.decode()
    source_db.maintenance_windows.all().delete()
    assert "maintenance window" not in client.get(f"/runs/{waiting.pk}/").content.decode()


# --- who may edit -------------------------------------------------------------------------------------------

def window_data(**fields):
    data = {"windows-TOTAL_FORMS": "1", "windows-INITIAL_FORMS": "0", "windows-MIN_NUM_FORMS": "0",
            "windows-MAX_NUM_FORMS": "1000", "windows-0-kind": "weekly", "windows-0-days": ["4"],
            "windows-0-start_time": "22:00", "windows-0-end_time": "02:00", "windows-0-time_zone": "Europe/Berlin",
            "windows-0-note": "vendor patch night"}
    data.update({f"windows-0-{name}": value for name, value in fields.items()})
    return data


def test_an_organization_admin_edits_the_windows_on_the_connection_page_and_history_keeps_it(
        client, org_admin, source_db):
    client.force_login(org_admin)
    detail = client.get(f"/connections/{source_db.pk}/").content.decode()
    assert "no windows" in detail and f"/connections/{source_db.pk}/windows/" in detail
    response = client.post(f"/connections/{source_db.pk}/windows/", window_data())
    assert response.status_code == 302
    window = source_db.maintenance_windows.get()
    assert (window.days, window.start_time, window.end_time) == ("4", dt.time(22), dt.time(2))
    assert "Fri 22:00-02:00 (next day) Europe/Berlin" in client.get(f"/connections/{source_db.pk}/").content.decode()
    record = window.history.get()
    assert record.history_user == org_admin and record.history_type == "+"
    # A one-off window is typed in its own zone's wall time.
    data = window_data(kind="once", starts_at="2026-12-01T22:00", ends_at="2026-12-02T04:00")
    data.update({"windows-TOTAL_FORMS": "2", "windows-INITIAL_FORMS": "1", "windows-0-id": str(window.pk),
                 "windows-1-kind": "once", "windows-1-starts_at": "2026-12-01T22:00",
                 "windows-1-ends_at": "2026-12-01T21:00", "windows-1-time_zone": "Europe/Berlin"})
    refused = client.post(f"/connections/{source_db.pk}/windows/", data)
    assert refused.status_code == 200 and "The end must come after the start." in refused.content.decode()
    data["windows-1-ends_at"] = "2026-12-02T04:00"
    assert client.post(f"/connections/{source_db.pk}/windows/", data).status_code == 302
    once = source_db.maintenance_windows.get(kind="once", starts_at__isnull=False, pk__gt=window.pk)
    assert once.starts_at == dt.datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    page = client.get(f"/connections/{source_db.pk}/windows/").content.decode()
    assert 'value="2026-12-01T22:00"' in page, "shown again in the window's zone"
    assert "2026-12-01 22:00 - 2026-12-02 04:00 Europe/Berlin" in client.get(f"/connections/{source_db.pk}/") \
        .content.decode()
    window.refresh_from_db()
    assert window.kind == "once" and window.days == "" and window.start_time is None
    assert window.history.count() == 2


def test_viewers_and_editors_cannot_edit_windows_and_other_organizations_never_see_them(
        client, member, owner, org_admin, source_db):
    source_db.maintenance_windows.create(kind="weekly", days="0", start_time=dt.time(1), end_time=dt.time(2),
                                         time_zone="UTC", note="secret vendor note")
    for user in (member, owner):
        client.force_login(user)
        assert client.get(f"/connections/{source_db.pk}/windows/").status_code == 403
        assert client.post(f"/connections/{source_db.pk}/windows/", window_data()).status_code == 403
        assert "Edit maintenance windows" not in client.get(f"/connections/{source_db.pk}/").content.decode()
    other_admin = factories.member(factories.organization("Other Org"), "oscar", "admin")
    client.force_login(other_admin)
    assert "secret vendor note" not in client.get("/connections/").content.decode()
    assert client.get(f"/connections/{source_db.pk}/").status_code == 404
    assert client.get(f"/connections/{source_db.pk}/windows/").status_code == 404
    assert client.post(f"/connections/{source_db.pk}/windows/", window_data()).status_code == 404
    assert source_db.maintenance_windows.count() == 1


def test_the_api_shows_a_connections_windows_to_its_organization_only(org_admin, source_db):
    from rest_framework.test import APIClient

    from api.models import ApiToken

    source_db.maintenance_windows.create(kind="weekly", days="46", start_time=dt.time(22), end_time=dt.time(2),
                                         time_zone="Europe/Berlin")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(org_admin, 'script')[1]}")
    answer = api.get(f"/api/v1/connections/{source_db.pk}/").json()
    assert answer["maintenance_windows"][0] | {"id": 0} == {
        "id": 0, "kind": "weekly", "days": [4, 6], "start_time": "22:00:00", "end_time": "02:00:00",
        "starts_at": None, "ends_at": None, "time_zone": "Europe/Berlin", "note": ""}
    other_admin = factories.member(factories.organization("Other Org"), "oscar", "admin")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(other_admin, 'script')[1]}")
    assert api.get(f"/api/v1/connections/{source_db.pk}/").status_code == 404
    assert "maintenance" not in str(api.get("/api/v1/connections/").json())


def test_in_the_admin_only_the_connections_organization_admins_change_its_windows(client, org_admin, owner,
                                                                                   source_db, tmp_path):
    from django.contrib.auth.models import Permission

    other_org = factories.organization("Other Org")
    other_admin = factories.member(other_org, "oscar", "admin")
    factories.local_folder(other_org, tmp_path / "theirs", name="Their drop")
    for user in (org_admin, owner, other_admin):  # staff with the model permissions: only the role decides
        user.is_staff = True
        user.save()
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="connections"))
    window = source_db.maintenance_windows.create(kind="weekly", days="0", start_time=dt.time(1),
                                                  end_time=dt.time(2), time_zone="UTC")
    data = {"connection": source_db.pk, "kind": "weekly", "days": ["1", "2"], "start_time": "23:00",
            "end_time": "01:30", "time_zone": "Europe/Berlin", "note": ""}
    client.force_login(owner)  # an editor sees the window but may not change it
    assert client.get(f"/admin/connections/maintenancewindow/{window.pk}/change/").status_code == 200
    assert client.post(f"/admin/connections/maintenancewindow/{window.pk}/change/", data).status_code == 403
    assert client.post("/admin/connections/maintenancewindow/add/", data).status_code == 403
    client.force_login(other_admin)
    assert "Mon 01:00" not in client.get("/admin/connections/maintenancewindow/").content.decode()
    assert client.get(f"/admin/connections/maintenancewindow/{window.pk}/change/").status_code in (302, 404)
    refused = client.post("/admin/connections/maintenancewindow/add/", data)
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode(), \
        "another organization's connection is not a choice"
    assert MaintenanceWindow.objects.count() == 1
    client.force_login(org_admin)
    assert "Mon 01:00-02:00 UTC" in client.get("/admin/connections/maintenancewindow/").content.decode()
    assert client.post("/admin/connections/maintenancewindow/add/", data).status_code == 302
    added = MaintenanceWindow.objects.exclude(pk=window.pk).get()
    assert str(added) == "Tue, Wed 23:00-01:30 (next day) Europe/Berlin"
    assert added.history.get().history_user == org_admin
