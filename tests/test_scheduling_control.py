"""Stopping runs (cancel, timeout) through the cancel-callback registry, system jobs, and the operator's controls:
pages, admin and management commands."""
import datetime as dt
import importlib
import os
import threading
import time

import psycopg
import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.urls import reverse
from django_q.models import Schedule

from connections.models import Connection
from etl_portal import cancellation
from projects import scheduling, system_jobs
from projects.admin import SystemJobForm
from projects.models import Project, SystemJob, Trigger
from runs import execution, orchestration, queueing
from runs.models import Run
from tasks.models import Dependency
from tasks.source_kinds.query import QueryKind
from tests.fixtures.processes import processes_with, still_running_with, unique_sleep
from tests.fixtures.scheduling import drain, wait_for
from tests.servers import postgres as pg

FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = FAST_HASHER


def in_background(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def pg_sleep_source(monkeypatch, pg_database):
    """A query source that runs pg_sleep on the real PostgreSQL server and registers the connection's cancel,
    as a database source does, so stopping the run cancels the statement on the server."""
    host, port, user = pg.dsn_parts()

    def produce(kind, ctx):
        with psycopg.connect(host=host, port=port, user=user, dbname=pg_database,
                             application_name=f"etl-run-{ctx.run.pk}") as connection:
            with cancellation.on_cancel(connection.cancel_safe):
                connection.execute("SELECT pg_sleep(30)")
        return []

    monkeypatch.setattr(QueryKind, "produce", produce)
    return pg_database


def statement_running(database, run_id):
    with pg.admin_connect() as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
                             "AND state = 'active'", (database, f"etl-run-{run_id}")).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_cancel_run_cancels_the_running_postgres_statement_and_records_cancelled(add_task, pg_sleep_source):
    task = add_task("Warehouse extract")
    run = queueing.enqueue_run(task)
    worker = in_background(lambda: execution.execute_next(worker="test:1:1"))
    wait_for(lambda: statement_running(pg_sleep_source, run.pk), message="pg_sleep to start")
    started = time.monotonic()
    assert orchestration.cancel_run(run) == f"Run #{run.pk} is being stopped."
    worker.join(timeout=10)
    run.refresh_from_db()
    assert run.status == "cancelled" and time.monotonic() - started < 5
    assert not statement_running(pg_sleep_source, run.pk)
    assert "Cancel requested: stopping the run" in run.log_lines.values_list("message", flat=True)


@pytest.mark.django_db(transaction=True)
def test_a_task_timeout_stops_the_run_fails_it_and_retries_it(add_task, pg_sleep_source):
    task = add_task("Slow extract", timeout_seconds=1, retries=1, retry_delay_seconds=3600)
    run = queueing.enqueue_run(task)
    started = time.monotonic()
    execution.execute_next(worker="test:1:1")
    run.refresh_from_db()
    assert time.monotonic() - started < 5
    assert run.status == "failed"
    assert run.error == "Timed out: the run took longer than its limit of 1 seconds and was stopped"
    retry = task.runs.get(trigger="retry")
    assert (retry.status, retry.attempt, retry.first_attempt) == ("queued", 2, run)


@pytest.mark.django_db(transaction=True)
def test_cancel_run_kills_a_running_script_and_its_processes(source_task):
    # The script runs in its own PID namespace, so its pids mean nothing out here: its processes are
    # found by a unique argument (the script's own command line holds its run folder, under tmp ETL_DATA_DIR).
    marker = unique_sleep()
    task = source_task(name="Sleeper", source_kind="script", script=(
        "import os, subprocess, time\n"
        f"child = subprocess.Popen(['sleep', {marker!r}])\n"
        "open('pids', 'w').write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(120)\n"))
    run = queueing.enqueue_run(task)
    worker = in_background(lambda: execution.execute_next(worker="test:1:1"))
    folder = wait_for(lambda: next(iter(
        (p for p in (os.path.join(d, "pids") for d in _run_folders(run)) if os.path.exists(p))), None),
        message="the script to start")
    wait_for(lambda: open(folder).read().split(), message="pids")
    assert processes_with(marker) and processes_with(os.path.dirname(folder))
    orchestration.cancel_run(run)
    worker.join(timeout=15)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert not still_running_with(marker) and not still_running_with(os.path.dirname(folder))


def _run_folders(run):
    from django.conf import settings

    base = settings.ETL_DATA_DIR / "runs" / str(run.task_id)
    return [str(base / name) for name in os.listdir(base)] if base.exists() else []


def test_cancel_callbacks_outside_a_run_are_harmless_and_run_at_once_when_already_stopping():
    called = []
    with cancellation.on_cancel(lambda: called.append("no run")):
        pass
    event = cancellation.stop_event(424242)
    assert not event.is_set()
    cancellation.stop(424242, "cancelled")
    try:
        assert event.is_set() and cancellation.stop_requested(424242) == "cancelled"
        cancellation.on_cancel(lambda: called.append("late"), run_id=424242)
        with pytest.raises(cancellation.RunStopped):
            cancellation.check_stop(424242)
    finally:
        for registry in (cancellation._stops, cancellation._callbacks, cancellation._events):
            registry.pop(424242, None)
    assert called == ["late"]


# --- system jobs --------------------------------------------------------------------------------------------

def default_jobs_migration():
    return importlib.import_module("projects.migrations.0003_default_system_jobs")


@pytest.mark.django_db
def test_default_system_jobs_come_from_a_migration_with_triggers_and_inactive_ones_visible():
    SystemJob.objects.all().delete()
    default_jobs_migration().create_defaults(django_apps, None)
    jobs = {job.name: job for job in SystemJob.objects.all()}
    assert set(jobs) == {"Purge expired output files", "Clean orphan schedules", "Test every connection",
                         "Prune old run logs"}
    assert not jobs["Prune old run logs"].active and jobs["Clean orphan schedules"].active
    assert all(job.function in system_jobs.REGISTRY and job.triggers.count() == 1 for job in jobs.values())
    trigger = jobs["Test every connection"].triggers.get()
    assert Schedule.objects.get(name=f"etl:trigger:{trigger.pk}").func == "projects.scheduling.fire_trigger"


@pytest.mark.django_db
def test_a_task_run_in_django_q2_sync_mode_starts_no_scheduler_tick_in_the_calling_process():
    # Sync mode runs the task here (a web request, a test) and sends post_spawn here too; only real
    # workers tick, or every web process would run the scheduler.
    from django_q.tasks import async_task, result

    task_id = async_task("math.floor", 2.5, sync=True)
    assert result(task_id) == 2
    assert "etl-scheduler-tick" not in [thread.name for thread in threading.enumerate()]


@pytest.mark.django_db
def test_unused_script_environments_are_removed_daily_by_default():
    # The migrations ran for the test database: the job is there, active, with its trigger and schedule.
    job = SystemJob.objects.get(name="Remove unused script environments")
    assert (job.function, job.kwargs, job.active) == ("prune_script_environments", {"days": 30}, True)
    trigger = job.triggers.get()
    assert (trigger.kind, trigger.hour, trigger.minute) == ("cron", "4", "30")
    assert Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").exists()


@pytest.mark.django_db
def test_a_system_job_runs_from_its_trigger_and_respects_active_and_max_instances(organization, closed_port):
    Connection.objects.create(organization=organization, name="Old FTP", kind="ftp", host="127.0.0.1",
                              port=closed_port, username="x")
    job = SystemJob.objects.create(name="Check connections", function="test_connections", active=True)
    trigger = Trigger.objects.create(system_job=job, kind="cron", hour="2")
    now = dt.datetime(2024, 6, 3, 1, 59, tzinfo=dt.timezone.utc)
    due = scheduling.arm(trigger, now)
    result = scheduling.fire_trigger(trigger.pk, now=due + dt.timedelta(seconds=1))
    job.refresh_from_db()
    assert result == job.last_result and result.startswith("1 of 1 connection(s) failed:\nOld FTP (ftp): ")
    assert job.running_count == 0 and job.last_finished_at
    SystemJob.objects.filter(pk=job.pk).update(running_count=1, last_started_at=dt.datetime.now(dt.timezone.utc))
    assert "still running (at most 1 at once)" in system_jobs.run_system_job(job.pk)
    SystemJob.objects.filter(pk=job.pk).update(active=False, running_count=0)
    assert scheduling.fire_trigger(trigger.pk, now=due + dt.timedelta(days=1, seconds=1)) == \
        "job Check connections is inactive"


@pytest.mark.django_db
def test_only_registered_functions_can_be_chosen_for_a_system_job():
    form = SystemJobForm(data={"name": "Evil", "function": "os.system", "args": "[]", "kwargs": "{}",
                               "max_instances": 1, "time_zone": "UTC"})
    assert not form.is_valid() and "Select a valid choice" in form.errors["function"][0]
    job = SystemJob.objects.create(name="Typed by hand", function="os.system")
    assert system_jobs.run_system_job(job.pk) == "unknown function"


# --- pages --------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_task_controls_post_endpoints_and_refusals(client, owner, member, add_task):
    task = add_task("Flaky", failing=True, retries=1, retry_delay_seconds=600)
    queueing.enqueue_run(task)
    drain()
    client.force_login(member)
    assert client.post(reverse("tasks:cancel-retry", args=[task.pk])).status_code == 403  # visible, so forbidden rather than not found
    client.force_login(owner)
    running = Run.objects.create(task=task, status=Run.Status.RUNNING)
    page = client.post(reverse("tasks:cancel-retry", args=[task.pk]), follow=True).content.decode()
    assert "is running: its retries cannot be cancelled now" in page
    assert orchestration.pending_retries(task).count() == 1
    response = client.post(reverse("runs:cancel", args=[running.pk]), follow=True)
    assert f"Run #{running.pk} is being stopped." in response.content.decode()
    running.delete()
    page = client.post(reverse("tasks:cancel-retry", args=[task.pk]), follow=True).content.decode()
    assert "1 pending retry of Flaky cancelled." in page
    page = client.post(reverse("tasks:reschedule", args=[task.pk]), follow=True).content.decode()
    assert "Schedules of Vendor feeds and Flaky recreated" in page
    assert client.post(reverse("projects:reschedule", args=[task.project_id])).status_code == 302


@pytest.mark.django_db
def test_the_controls_include_disables_cancel_retry_while_the_task_runs(rf, owner, add_task):
    from django.template.loader import render_to_string

    task = add_task("Flaky", failing=True, retries=1, retry_delay_seconds=600)
    queueing.enqueue_run(task)
    drain()
    request = rf.get("/")
    request.user = owner
    html = render_to_string("tasks/_controls_schedule.html", {"task": task, "user": owner}, request=request)
    assert 'id="cancel-retry-button"\n      title="Cancel the pending retry' in html
    running = Run.objects.create(task=task, status=Run.Status.RUNNING)
    html = render_to_string("tasks/_controls_schedule.html", {"task": task, "user": owner}, request=request)
    assert "disabled title=\"The task is running" in html and f"Cancel run #{running.pk}" in html


@pytest.mark.django_db
def test_the_project_includes_show_next_times_with_offsets_and_the_graph_in_three_colours(
        project, other_project, add_task, add_trigger):
    from django.template.loader import render_to_string

    project.time_zone = "America/New_York"
    project.save()
    add_trigger(project, hour="2", minute="30", start_at=dt.datetime(2030, 10, 30, tzinfo=dt.timezone.utc))
    html = render_to_string("projects/_triggers.html", {"project": project})
    assert html.count("<li") == 10 and "EDT (UTC-04:00)" in html and "EST (UTC-05:00)" in html
    assert "clocks change: UTC-04:00 → UTC-05:00" in html and "Wed 2030-10-30 02:30:00" in html
    a, b, c = add_task("Extract"), add_task("Load"), add_task("Alert", project=other_project)
    Dependency.objects.create(upstream=a, downstream=b, on="success")
    Dependency.objects.create(upstream=a, downstream=c, on="failure")
    Dependency.objects.create(upstream=b, downstream=c, on="completion")
    svg = render_to_string("projects/_dependency_graph.html", {"project": project})
    assert all(colour in svg for colour in ("#198754", "#dc3545", "#0d6efd"))
    assert svg.count('class="edge ') == 3 and 'stroke-dasharray="4 3"' in svg  # Alert is another project's
    assert "on success" in svg and "on failure" in svg and "on completion" in svg


@pytest.mark.django_db
def test_admin_reschedule_action_and_trigger_validation(client, staff, project, add_trigger):
    trigger = add_trigger(project, hour="4")
    Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").delete()
    client.force_login(staff)
    response = client.post(reverse("admin:projects_project_changelist"),
                           {"action": "reschedule", "_selected_action": [project.pk]}, follow=True)
    assert "1 rescheduled from their triggers" in response.content.decode()
    assert Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").exists()
    assert client.get(reverse("admin:projects_systemjob_changelist")).status_code == 200


# --- commands -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run_project", "reschedule_all", "list_schedules", "cancel_run", "run_task"])
def test_every_ops_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit):
        call_command(command, "--help")
    assert len(capsys.readouterr().out) > 300


@pytest.mark.django_db
def test_ops_commands_run_a_project_list_schedules_and_cancel(project, add_task, add_trigger, capsys):
    project.mode = Project.Mode.SERIES
    project.save()
    add_task("First")
    add_task("Second", run_rank=2)
    add_trigger(project, hour="2", minute="30", time_zone="Europe/London")
    call_command("run_project", str(project.pk))
    out = capsys.readouterr().out
    runs = list(Run.objects.order_by("id"))
    assert out.splitlines() == [f"run {runs[0].pk} First: queued", f"run {runs[1].pk} Second: queued"]
    call_command("list_schedules", "--project", str(project.pk), "--count", "2")
    out = capsys.readouterr().out
    assert "Cron: hour 2, minute 30 (Europe/London)" in out and ("BST (UTC+01:00)" in out or "GMT" in out)
    call_command("cancel_run", str(runs[0].pk))
    assert capsys.readouterr().out.strip() == f"Run #{runs[0].pk} was cancelled before it started."
    assert Run.objects.get(pk=runs[1].pk).error == "Skipped (upstream failed): First cancelled"
    call_command("reschedule_all")
    assert "schedule(s) recreated" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_admin_refuses_a_dependency_that_closes_a_cycle_and_lists_inactive_system_jobs(client, staff, add_task):
    first, second = add_task("Extract"), add_task("Load")
    Dependency.objects.create(upstream=first, downstream=second)
    client.force_login(staff)
    page = client.post(reverse("admin:tasks_dependency_add"),
                       {"upstream": second.pk, "downstream": first.pk, "on": "success"}).content.decode()
    assert "This dependency would create a cycle: Load → Extract → Load." in page
    assert Dependency.objects.count() == 1
    SystemJob.objects.get_or_create(name="Prune old run logs", defaults={"function": "prune_run_logs"})
    listing = client.get(reverse("admin:projects_systemjob_changelist")).content.decode()
    assert "Prune old run logs" in listing and 'alt="False"' in listing  # inactive, yet listed
