"""The analyst's pages as a user sees them: live run fragment, times in their zone, durations, sizes,
paginated history with a status filter, the grouped controls, error pages and the admin's wording."""
import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import UserPreference
from runs.models import Run, RunFile

pytestmark = pytest.mark.django_db


def test_the_live_fragment_follows_the_run_and_stops_polling_when_it_ends(client, owner, add_task):
    client.force_login(owner)
    task = add_task("Orders")
    run = Run.objects.create(task=task, status=Run.Status.QUEUED)
    url = reverse("runs:live", args=[run.pk]) + "?on=task"
    page = client.get(url).content.decode()
    assert 'data-status="queued"' in page and 'hx-trigger="every 2s"' in page
    assert f"Cancel queued run #{run.pk}" in page and 'hx-swap-oob="true"' in page
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, rows=1234,
                                         started_at=timezone.now() - dt.timedelta(seconds=83))
    page = client.get(url).content.decode()
    assert 'data-status="running"' in page and "running for 1 min 23 s" in page and "1234 rows" in page
    assert f"Cancel run #{run.pk}" in page
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, finished_at=timezone.now())
    RunFile.objects.create(run=run, name="orders.csv", size=558040, md5="0" * 32)
    page = client.get(url).content.decode()
    assert 'data-status="succeeded"' in page and "hx-trigger" not in page
    assert "orders.csv" in page and "545.0 KB" in page and "Cancel run" not in page


def test_the_run_page_shows_duration_rerun_zone_and_one_size_unit(client, owner, add_task):
    client.force_login(owner)
    task = add_task("Orders")
    start = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.timezone.utc)
    run = Run.objects.create(task=task, status=Run.Status.SUCCEEDED, started_at=start, scheduled_for=start,
                             finished_at=start + dt.timedelta(seconds=10.257708))
    RunFile.objects.create(run=run, name="orders.csv", size=558040, md5="0" * 32)
    UserPreference.objects.create(user=owner, time_zone="Europe/Paris")
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "took <span id=\"run-duration\">10 s</span>" in page and 'id="rerun-button"' in page
    assert "2030-01-15 13:00 CET" in page and "0:00:10" not in page
    assert "545.0 KB" in page and "bytes" not in page
    assert f'href="{reverse("projects:detail", args=[task.project_id])}"' in page  # breadcrumb link


def test_times_follow_the_users_zone_then_the_projects(client, owner, add_task):
    client.force_login(owner)
    task = add_task("Orders")
    task.project.time_zone = "America/New_York"
    task.project.save()
    start = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.timezone.utc)
    Run.objects.create(task=task, status=Run.Status.FAILED, started_at=start, finished_at=start)
    page = client.get(task.get_absolute_url()).content.decode()
    assert "2030-01-15 07:00 EST" in page and "times in America/New_York" in page
    response = client.post(reverse("account:settings"), {"time_zone": "Asia/Tokyo"}, follow=True)
    assert "Asia/Tokyo" in response.content.decode()
    page = client.get(task.get_absolute_url()).content.decode()
    assert "2030-01-15 21:00 JST" in page
    assert "is not one of the available choices" in client.post(
        reverse("account:settings"), {"time_zone": "Mars/Olympus"}).content.decode()


def test_live_log_lines_and_token_times_are_in_the_zone_the_page_shows(client, owner, add_task):
    from api.models import ApiToken
    from runs.models import RunLog

    client.force_login(owner)
    task = add_task("Orders")
    task.project.time_zone = "America/New_York"
    task.project.save()
    run = Run.objects.create(task=task, status=Run.Status.RUNNING)
    line = RunLog.objects.create(run=run, level="info", message="Query started")
    RunLog.objects.filter(pk=line.pk).update(created_at=dt.datetime(2030, 1, 15, 12, 0, 5, tzinfo=dt.timezone.utc))
    lines = client.get(reverse("runs:log", args=[run.pk])).json()["lines"]
    assert [(item["time"], item["message"]) for item in lines] == [("07:00:05", "Query started")]  # as the page

    token, _key = ApiToken.issue(owner, "migration script")
    ApiToken.objects.filter(pk=token.pk).update(created_at=dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.timezone.utc))
    UserPreference.objects.create(user=owner, time_zone="Asia/Tokyo")
    page = client.get("/account/tokens/").content.decode()
    assert "2030-01-15 21:00 JST" in page and "never" in page
    assert client.get(reverse("runs:log", args=[run.pk])).json()["lines"][0]["time"] == "21:00:05"


def test_run_history_is_paginated_and_filtered_by_status(client, owner, add_task):
    client.force_login(owner)
    task = add_task("Orders")
    failed = Run.objects.bulk_create([Run(task=task, status="failed") for _ in range(25)])
    Run.objects.create(task=task, status="succeeded")
    page = client.get(task.get_absolute_url()).content.decode()
    assert page.count('id="run-row-') == 20 and "run_page=2" in page
    older = client.get(task.get_absolute_url() + "?run_page=2").content.decode()
    assert older.count('id="run-row-') == 6 and f'id="run-row-{failed[0].pk}"' in older
    only = client.get(task.get_absolute_url() + "?status=succeeded").content.decode()
    assert only.count('id="run-row-') == 1
    assert client.get(task.get_absolute_url() + "?status=nonsense").status_code == 400
    assert client.get(task.get_absolute_url() + "?run_page=x").status_code == 400


def test_controls_are_grouped_and_cancel_retry_shows_only_when_one_waits(client, owner, add_task):
    client.force_login(owner)
    task = add_task("Flaky", retries=3)
    page = client.get(task.get_absolute_url()).content.decode()
    assert 'id="more-button"' in page and "Rebuild schedule" in page and "cancel-retry-button" not in page
    first = Run.objects.create(task=task, status="failed")
    wait = timezone.now() + dt.timedelta(minutes=10)
    Run.objects.create(task=task, status="queued", trigger="retry", attempt=3, first_attempt=first,
                       not_before=wait)
    page = client.get(task.get_absolute_url()).content.decode()
    assert "cancel-retry-button" in page and "waits until" in page
    assert "Automatic retry 2 of 3, waits until" in page and "Retry waiting" in page


def test_a_disabled_task_shows_no_next_run(client, owner, add_task, add_trigger):
    from projects.models import Trigger

    client.force_login(owner)
    task = add_task("Nightly")
    trigger = add_trigger(task.project, hour="2", minute="0")
    Trigger.objects.filter(pk=trigger.pk).update(next_run_at=timezone.now() + dt.timedelta(hours=2, minutes=5, seconds=30))
    assert "in 2 h 5 min" in client.get("/tasks/").content.decode()
    task.enabled = False
    task.save()
    assert "in 2 h" not in client.get("/tasks/").content.decode()


def test_error_pages_have_navigation_and_the_favicon(client, owner):
    client.force_login(owner)
    page = client.get("/no/such/page/")
    assert page.status_code == 404
    body = page.content.decode()
    assert "Page not found" in body and 'href="/tasks/"' in body and "favicon.svg" in body


def test_the_admin_has_no_add_for_system_records_and_right_plurals(client, staff, owner, add_task):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    for model in ("run", "runfile", "runlog", "filedownload"):
        assert client.get(reverse(f"admin:runs_{model}_add")).status_code == 403
        assert f"/admin/runs/{model}/add/" not in client.get(reverse(f"admin:runs_{model}_changelist")).content.decode()
    index = client.get(reverse("admin:index")).content.decode()
    assert "Dependencies" in index and "Dependencys" not in index and "ETL Portal administration" in index
    task = add_task("One")
    response = client.post(reverse("admin:tasks_task_changelist"), {"action": "disable", "_selected_action": [task.pk]},
                           follow=True)
    assert "1 task disabled" in response.content.decode()


def test_the_live_fragment_is_only_for_those_who_may_see_the_run(client, outsider, member, add_task):
    run = Run.objects.create(task=add_task("Orders"), status=Run.Status.RUNNING)
    client.force_login(outsider)
    assert client.get(reverse("runs:live", args=[run.pk])).status_code == 404
    client.force_login(member)
    page = client.get(reverse("runs:live", args=[run.pk])).content.decode()
    assert 'data-status="running"' in page and "Cancel run" not in page  # a viewer sees, but may not cancel
