"""Dry runs and maintenance windows (runs/dry_run.py over runs/windows.py): for each connection a run would use
that is in a window at the dry run's moment, the report says "A run now would wait for the maintenance window of
<connection> until <end>", and it lists the windows beginning within the next 24 hours on those connections. The
dry run never connects to a connection in a window: a source in one is not read, and the report says why. Shown
on the dry-run page (times in the viewer's zone) and by `run_task --dry-run` (in the project's zone); a task with
no window in reach shows none of it."""
import datetime as dt
import json
import re
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from accounts.models import UserPreference
from runs import dry_run, windows
from runs.models import DryRun, Run
from tasks.models import Condition, Notification
from tests import factories
from tests.fixtures.delivery import NEW_YORK, ORDERS_QUERY

pytestmark = pytest.mark.django_db
UTC, KOLKATA, BERLIN = dt.timezone.utc, ZoneInfo("Asia/Kolkata"), ZoneInfo("Europe/Berlin")
MONDAY_8 = dt.datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def text_of(html):
    """The page as a reader sees it: no tags, white space folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def once(connection, start, end):
    return connection.maintenance_windows.create(kind="once", starts_at=start, ends_at=end, time_zone="UTC")


def in_zone(moment, zone, style="%Y-%m-%d %H:%M %Z"):
    return moment.astimezone(zone).strftime(style)


@pytest.fixture
def orders(make_task, sqlite_orders, local_folder, ny_project, organization):
    """A task reading Orders DB and delivering to Vendor drop, with a success email (through a mail connection
    that is never opened: a dry run sends nothing)."""
    vendor, folder = local_folder("Vendor drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, [(vendor, "in")], file_name="orders.csv")
    mail = factories.connection(organization, "smtp", "Mail relay", host="127.0.0.1", port=1,
                                options={"from_address": "etl@example.com"})
    Notification.objects.create(task=task, event="success", smtp_connection=mail, recipients="ana@example.com")
    return task, sqlite_orders, vendor, folder


def dry_run_page(client, task):
    """Ask for a dry run on Task Details, let the worker make it, and read its page."""
    client.post(f"/tasks/{task.pk}/dry-run/")
    made = DryRun.objects.latest("pk")
    dry_run.execute(made.pk)
    return client.get(f"/runs/dry-runs/{made.pk}/").content.decode(), DryRun.objects.get(pk=made.pk).report


def command_report(task, owner, *args):
    out = StringIO()
    call_command("run_task", task.pk, "--dry-run", *args, "--user", owner.username, stdout=out)
    return json.loads(out.getvalue())


def test_a_source_in_its_window_is_not_read_and_the_page_says_a_run_would_wait_until_its_end(
        orders, owner, client_of):
    task, source, _, drop = orders
    now = dt.datetime.now(UTC)
    end = now + dt.timedelta(hours=2)
    once(source, now - dt.timedelta(minutes=5), end)
    Path(source.path).unlink()  # reading the source now fails: the dry run must not try
    UserPreference.objects.create(user=owner, time_zone="Asia/Kolkata")  # UTC+05:30
    client = client_of(owner)

    page, report = dry_run_page(client, task)

    shown = text_of(page)
    assert f"A run now would wait for the maintenance window of Orders DB until {in_zone(end, KOLKATA, '%H:%M %Z')}" \
        in shown, "the end in the viewer's zone"
    assert "Not read: Orders DB is in a maintenance window and a dry run does not connect to a connection in " \
           "maintenance; no rows were read" in shown
    assert "Stopped before the source: Orders DB is in a maintenance window; a run now would wait for a " \
           "maintenance window" in shown
    assert "A run would fail" not in shown and "error" not in report and report.get("rows") is None
    assert 'id="dry-run-rows"' not in page and "Vendor drop has a maintenance window" not in shown
    assert "On success through Mail relay: to ana@example.com" in shown, "the rest of the report is still there"
    assert list(drop.iterdir()) == [] and not Run.objects.exists()

    # The command says the same, in the project's zone.
    printed = command_report(task, owner)
    assert [wait["text"] for wait in printed["maintenance"]["waits"]] == [
        f"A run now would wait for the maintenance window of Orders DB until {in_zone(end, NEW_YORK)}"]
    assert printed["source"].startswith("Not read: Orders DB is in a maintenance window")
    assert "error" not in printed and "rows" not in printed

    # Without the window the same dry run reads the source, and fails on the missing file: it was not read above.
    source.maintenance_windows.all().delete()
    page, report = dry_run_page(client, task)
    assert "A run would fail" in text_of(page) and report["error"]
    assert "maintenance window" not in text_of(page)


def test_the_command_names_a_destination_in_its_window_and_the_windows_of_the_coming_day(orders, owner):
    task, source, vendor, drop = orders
    now = dt.datetime.now(UTC)
    vendor_end = now + dt.timedelta(minutes=40)
    once(vendor, now - dt.timedelta(minutes=1), vendor_end)
    soon_start, soon_end = now + dt.timedelta(hours=3), now + dt.timedelta(hours=4)
    once(source, soon_start, soon_end)
    once(source, now + dt.timedelta(hours=30), now + dt.timedelta(hours=31))  # beyond the coming day
    other = factories.sqlite_source(task.project.organization, drop.parent / "other.sqlite3", name="Unused DB")
    once(other, now - dt.timedelta(minutes=1), now + dt.timedelta(hours=1))  # not a connection of the task

    # As of a past date: a run for it would still be claimed now, so now's windows count.
    report = command_report(task, owner, "--as-of", "2024-03-15")

    assert report["rows"] == 3, "the source is not in a window: it was read"
    assert [wait["text"] for wait in report["maintenance"]["waits"]] == [
        f"A run now would wait for the maintenance window of Vendor drop until {in_zone(vendor_end, NEW_YORK)}"]
    assert [window["text"] for window in report["maintenance"]["coming"]] == [
        f"Orders DB has a maintenance window from {in_zone(soon_start, NEW_YORK)} to {in_zone(soon_end, NEW_YORK)}"]
    assert report["outcome"] == "Would deliver; a run now would wait for a maintenance window"
    assert report["destinations"][0]["connection"] == "Vendor drop" and list(drop.iterdir()) == []


def test_the_page_lists_a_window_beginning_within_the_day_in_the_viewers_zone(orders, owner, client_of):
    task, source, vendor, _ = orders
    now = dt.datetime.now(UTC)
    start, end = now + dt.timedelta(hours=5), now + dt.timedelta(hours=6)
    once(vendor, start, end)
    UserPreference.objects.create(user=owner, time_zone="Asia/Kolkata")

    page, report = dry_run_page(client_of(owner), task)

    shown = text_of(page)
    assert (f"Vendor drop has a maintenance window from {in_zone(start, KOLKATA)} to "
            f"{in_zone(end, KOLKATA, '%H:%M %Z')}") in shown
    assert "A run now would wait" not in shown and report["outcome"] == "Would deliver"
    assert report["rows"] == 3


def test_no_window_in_reach_no_maintenance_lines(orders, owner, client_of):
    task, source, vendor, _ = orders
    now = dt.datetime.now(UTC)
    once(source, now - dt.timedelta(hours=3), now - dt.timedelta(hours=1))  # over
    once(vendor, now + dt.timedelta(hours=25), now + dt.timedelta(hours=26))  # beyond the day

    page, report = dry_run_page(client_of(owner), task)

    assert report["maintenance"]["waits"] == [] and report["maintenance"]["coming"] == []
    assert report["outcome"] == "Would deliver" and report["rows"] == 3
    assert "maintenance" not in text_of(page).lower()
    assert 'id="dry-run-maintenance"' not in page


def test_a_condition_querying_a_connection_in_its_window_is_not_checked(orders, organization, tmp_path):
    task, _, _, drop = orders
    checks = factories.sqlite_source(organization, tmp_path / "checks.sqlite3", name="Checks DB")
    Condition.objects.create(task=task, kind="query_rows", connection=checks, query="SELECT * FROM never_made")
    at = MONDAY_8
    once(checks, at - dt.timedelta(minutes=10), at + dt.timedelta(minutes=50))

    report = dry_run.build(task, at, at=at)

    assert report["rows"] == 3, "the source was read"
    assert report["conditions"].startswith("Not checked: Checks DB is in a maintenance window")
    assert report["outcome"] == ("Stopped before the conditions: Checks DB is in a maintenance window; "
                                 "a run now would wait for a maintenance window")
    assert "error" not in report and "outputs" not in report and list(drop.iterdir()) == []
    assert [wait["text"] for wait in report["maintenance"]["waits"]] == [
        "A run now would wait for the maintenance window of Checks DB until 2024-06-03 04:50 EDT"]


def test_weekly_windows_of_the_coming_day_are_listed_once_each_joined_when_they_follow_one_another(
        orders, owner):
    task, source, vendor, _ = orders
    # Mondays 22:00-23:00 and 23:00-01:00 Berlin (one maintenance), Tuesdays 09:00-10:00: within a day of
    # Monday 08:00 UTC (10:00 Berlin). Wednesdays: beyond it. Monday 09:30-10:30 Berlin holds at the moment.
    for days, start, end in (("0", 22, 23), ("0", 23, 1), ("1", 9, 10), ("2", 9, 10), ("0", 9.5, 10.5)):
        source.maintenance_windows.create(
            kind="weekly", days=days, time_zone="Europe/Berlin",
            start_time=dt.time(int(start), int(start % 1 * 60)), end_time=dt.time(int(end), int(end % 1 * 60)))

    coming = windows.coming(task.pk, MONDAY_8)
    berlin = [(connection.name, start.astimezone(BERLIN).strftime("%a %H:%M"), end.astimezone(BERLIN)
               .strftime("%a %H:%M")) for connection, start, end in coming]
    assert berlin == [("Orders DB", "Mon 22:00", "Tue 01:00"), ("Orders DB", "Tue 09:00", "Tue 10:00")]
    assert [(connection.name, end) for connection, end in windows.in_maintenance(task.pk, MONDAY_8)] == [
        ("Orders DB", dt.datetime(2024, 6, 3, 8, 30, tzinfo=UTC))]

    report = dry_run.build(task, MONDAY_8, at=MONDAY_8)
    assert [window["text"] for window in report["maintenance"]["coming"]] == [
        "Orders DB has a maintenance window from 2024-06-03 16:00 EDT to 2024-06-03 19:00 EDT",
        "Orders DB has a maintenance window from 2024-06-04 03:00 EDT to 2024-06-04 04:00 EDT"]
    assert report["source"].startswith("Not read: Orders DB")
