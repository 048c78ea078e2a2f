"""The dashboard, the home page: what failed or warned in the last 24 h, what runs and waits, the next starts,
connections failing their test, "Run all errored", the day's timeline; and Task Details' chart of the last runs."""
import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from projects.models import Trigger
from runs.models import Run
from tests import factories

pytestmark = pytest.mark.django_db

NOW = None  # this test's "now", set when it starts (a module-level time would age while other modules run)


@pytest.fixture(autouse=True)
def now_is_the_tests_start():
    global NOW
    NOW = timezone.now().replace(microsecond=0)


def ago(**delta):
    return NOW - datetime.timedelta(**delta)


@pytest.fixture
def world():
    a, b = factories.organization("A"), factories.organization("B")
    viewer = factories.member(a, "viewer")
    editor = factories.member(a, "editor", "editor")
    stranger = factories.member(b, "stranger", "admin")
    feeds = factories.project(a, editor, "Feeds", time_zone="UTC")
    secret = factories.project(b, stranger, "Secret project")
    orders, refunds, stock = (factories.task(feeds, name) for name in ("Orders", "Refunds", "Stock"))
    hidden = factories.task(secret, "Hidden task")

    def run(task, status, started=None, minutes=None, **fields):
        finished = started + datetime.timedelta(minutes=minutes) if minutes is not None else None
        return factories.run(task, status=status, trigger="schedule", started_at=started, finished_at=finished,
                             **fields)

    return {
        "viewer": viewer, "editor": editor, "stranger": stranger, "a": a, "b": b, "feeds": feeds, "secret": secret,
        "orders": orders, "refunds": refunds, "stock": stock, "hidden": hidden,
        "old_failure": run(refunds, "failed", ago(days=3), 1, scheduled_for=ago(days=3)),  # older than 24 h
        "orders_failed": run(orders, "failed", ago(hours=5), 2, scheduled_for=ago(days=1), error="Vendor refused"),
        "refunds_warning": run(refunds, "warning", ago(hours=4), 1, error="No rows"),
        "stock_ok": run(stock, "succeeded", ago(hours=6), 30),
        "stock_running": run(stock, "running", ago(minutes=90)),
        "orders_queued": run(orders, "queued"),
        "hidden_failed": run(hidden, "failed", ago(hours=1), 1, error="Hidden error"),
    }


def section(page, element_id):
    return page.partition(f'id="{element_id}"')[2].partition("</section>")[0]


def run_ids(html, prefix="dash-run-"):
    return [int(number) for number in re.findall(rf'id="{prefix}(\d+)"', html)]


def test_home_page_is_the_dashboard(client, world):
    client.force_login(world["viewer"])
    page = client.get("/").content.decode()
    assert "<h1 class=\"h3 me-auto mb-0\">Dashboard</h1>" in page


def test_sections_show_the_users_runs_of_the_last_day(client, world):
    client.force_login(world["viewer"])
    page = client.get("/").content.decode()
    problems = section(page, "dash-problems")
    assert run_ids(problems) == [world["refunds_warning"].pk, world["orders_failed"].pk]  # latest end first
    assert "Vendor refused" in problems and "1 failed" in problems and "1 warning" in problems
    running = section(page, "dash-running")
    assert run_ids(running.partition("Queued")[0]) == [world["stock_running"].pk]
    assert "1 h 30 min" in running  # elapsed
    assert run_ids(running.partition("Queued")[2]) == [world["orders_queued"].pk]
    assert "Hidden" not in page and "Secret project" not in page


def test_next_starts_come_from_the_triggers(client, world):
    Trigger.objects.create(project=world["feeds"], kind="interval", every=6, unit="hours",
                           start_at=NOW - datetime.timedelta(minutes=1))
    Trigger.objects.create(project=world["secret"], kind="interval", every=1, unit="hours")
    client.force_login(world["viewer"])
    upcoming = client.get("/").content.decode().partition('id="dash-upcoming"')[2].partition("</ul>")[0]
    assert upcoming.count("<li>") == 4  # every six hours: four starts within the next 24 h
    assert upcoming.count("Feeds") == 4 and "Secret project" not in upcoming


def test_connections_that_failed_their_last_test(client, world):
    factories.connection(world["a"], "sftp", "Vendor SFTP", last_test_ok=False, last_tested_at=ago(hours=2),
                         last_test_message="Authentication failed")
    factories.connection(world["a"], "sftp", "Fine SFTP", last_test_ok=True, last_tested_at=ago(hours=2))
    factories.connection(world["a"], "sftp", "Untested SFTP")
    factories.connection(world["b"], "sftp", "Their SFTP", last_test_ok=False, last_tested_at=ago(hours=2))
    client.force_login(world["viewer"])
    listed = client.get("/").content.decode().partition('id="dash-connections"')[2].partition("</ul>")[0]
    assert "Vendor SFTP" in listed and "Authentication failed" in listed
    assert "Fine SFTP" not in listed and "Untested" not in listed and "Their SFTP" not in listed


def test_a_failed_connection_test_shows_up_through_the_test_action(client, world, closed_port):
    """The Test button records the result the dashboard reads (connections/services.py)."""
    refused = factories.connection(world["a"], "sftp", "Closed port", host="127.0.0.1", port=closed_port,
                                   username="u", secrets={"password": "pw"})
    client.force_login(world["editor"])
    client.post(f"/connections/{refused.pk}/test/")
    listed = client.get("/").content.decode().partition('id="dash-connections"')[2].partition("</ul>")[0]
    assert "Closed port" in listed


def test_timeline_draws_one_bar_per_run_by_task_coloured_by_status(client, world):
    client.force_login(world["viewer"])
    page = client.get("/").content.decode()
    svg = page.partition('<svg class="timeline"')[2].partition("</svg>")[0]
    bars = {int(run): status for status, run in re.findall(r'<rect class="bar bar-(\w+)" data-run="(\d+)"', svg)}
    assert bars == {world["orders_failed"].pk: "failed", world["refunds_warning"].pk: "warning",
                    world["stock_ok"].pk: "succeeded", world["stock_running"].pk: "running"}
    rows = re.findall(r'<g class="timeline-row" data-task="(\d+)">', svg)
    # One row per task, the worst first: a failure, then a warning, then a running task.
    assert list(map(int, rows)) == [world["orders"].pk, world["refunds"].pk, world["stock"].pk]
    # A bar's place and length follow its times: 30 minutes of a 24-hour width of 800.
    stock_ok = re.search(rf'data-run="{world["stock_ok"].pk}" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert float(stock_ok.group(2)) == pytest.approx(800 * 30 / 1440, abs=0.2)
    assert float(stock_ok.group(1)) == pytest.approx(200 + 800 * 18 / 24, abs=0.5)
    assert "<script" not in page.partition("<main")[2].partition("</main>")[0]


def test_dashboard_queries_stay_few_whatever_the_runs(client, world):
    Run.objects.filter(pk=world["orders_queued"].pk).delete()  # Orders is failing: every section has rows
    client.force_login(world["editor"])
    client.get("/")
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for number in range(30):
        factories.run(world["stock"], status="failed", started_at=ago(minutes=number + 1), finished_at=ago(minutes=number))
    with CaptureQueriesContext(connection) as many:
        client.get("/")
    assert len(many) == len(few) <= 20


def test_open_late_and_missed_alerts_show_for_the_users_organization_only(client, world):
    from alerts.models import Alert

    running = world["stock_running"]
    Alert.objects.create(kind="late", task=running.task, run=running, due_at=running.started_at,
                         message="Still running after its maximum duration of 1:00:00")
    Alert.objects.create(kind="missed", task=world["hidden"], due_at=running.started_at, message="Never started")
    client.force_login(world["viewer"])
    late = client.get("/").content.decode().split('id="dashboard-late"')[1].split("</section>")[0]
    assert "Still running after its maximum duration of 1:00:00" in late and f"#{running.pk}" in late
    assert "Never started" not in late  # another organization's task


# --- Run all errored -----------------------------------------------------------------------------------------------

def test_run_all_errored_reruns_the_latest_failure_of_each_task_still_failing_once(client, world):
    # Stock failed earlier but is running again: not failing. Refunds' latest is a warning: not failing. Orders'
    # latest run is queued: not failing either, until that run is gone.
    client.force_login(world["editor"])
    assert 'id="run-errored-button"' in client.get("/").content.decode()  # there were failures in the last 24 h
    response = client.post("/dashboard/run-errored/", follow=True)
    assert "No task is failing: nothing to rerun." in response.content.decode()
    assert not Run.objects.filter(rerun_of__isnull=False).exists()
    Run.objects.filter(pk=world["orders_queued"].pk).delete()
    response = client.post("/dashboard/run-errored/", follow=True)
    assert "Queued 1 rerun, each for its run&#x27;s date." in response.content.decode()
    again = Run.objects.get(rerun_of__isnull=False)
    assert (again.rerun_of, again.task, again.scheduled_for, again.status, again.requested_by) == (
        world["orders_failed"], world["orders"], world["orders_failed"].scheduled_for, "queued", world["editor"])
    client.post("/dashboard/run-errored/")  # a second click (or a double submit): nothing more
    assert Run.objects.filter(rerun_of__isnull=False).count() == 1


def test_run_all_errored_is_refused_to_a_viewer(client, world):
    Run.objects.filter(pk=world["orders_queued"].pk).delete()
    client.force_login(world["viewer"])
    assert "run-errored-button" not in client.get("/").content.decode()
    before = Run.objects.count()
    assert client.post("/dashboard/run-errored/").status_code == 403
    assert Run.objects.count() == before


def test_run_all_errored_leaves_disabled_tasks_and_other_organizations_alone(client, world):
    Run.objects.filter(pk=world["orders_queued"].pk).delete()
    world["orders"].enabled = False
    world["orders"].save()
    client.force_login(world["editor"])
    client.post("/dashboard/run-errored/")
    assert not Run.objects.filter(rerun_of__isnull=False).exists()  # Hidden task's failure is another org's


# --- Task Details: the chart of the last runs ------------------------------------------------------------------------

def test_task_details_charts_duration_and_rows_of_the_last_runs(client, world):
    task = world["stock"]
    made = [factories.run(task, status=status, started_at=ago(hours=10 - n), finished_at=ago(hours=10 - n) +
                          datetime.timedelta(seconds=seconds), rows=rows)
            for n, (status, seconds, rows) in enumerate([("succeeded", 60, 100), ("failed", 30, 0),
                                                          ("succeeded", 120, 400)])]
    client.force_login(world["viewer"])
    chart = client.get(f"/tasks/{task.pk}/").content.decode().partition('id="run-chart"')[2]
    duration = chart.partition('data-chart="duration"')[2].partition("</svg>")[0]
    rows = chart.partition('data-chart="rows"')[2].partition("</svg>")[0]
    finished = [world["stock_ok"], *made]  # the running run is not drawn yet
    for svg in (duration, rows):
        assert [int(run) for run in re.findall(r'data-run="(\d+)"', svg)] == [run.pk for run in finished]
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', duration)]
    assert heights == [60.0, 2.0, 1.0, 4.0]  # 30 min is the top; 60 s, 30 s, 120 s of it
    assert [float(h) for h in re.findall(r'height="([\d.]+)"><title>', rows)] == [1.0, 15.0, 1.0, 60.0]
    assert 'class="bar bar-failed"' in duration
