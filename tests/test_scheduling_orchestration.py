"""Triggers firing on django-q2 schedules, series and parallel projects, dependencies, retries and limits.

Time comes from an injected clock; runs execute in this process through the same entry point the workers use.
"""
import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django_q.models import Schedule

from projects import scheduling
from projects.models import Project
from runs import execution, orchestration, queueing
from runs.forms_control import DependencyForm
from runs.models import Run
from tasks.models import Dependency
from tests.fixtures.scheduling import drain, statuses

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def schedule_of(trigger):
    return Schedule.objects.get(name=f"etl:trigger:{trigger.pk}")


def fire(trigger, now):
    return scheduling.fire_trigger(trigger.pk, now=now, execute=False)


def test_a_trigger_has_one_named_django_q2_schedule_that_fires_it_and_follows_it(project, add_trigger, clock):
    trigger = add_trigger(project, hour="6", minute="30", time_zone="Europe/London")
    schedule = schedule_of(trigger)
    assert (schedule.func, schedule.args) == ("projects.scheduling.fire_trigger", str(trigger.pk))
    assert schedule.next_run == trigger.next_run_at
    scheduling.arm(trigger, clock.now)  # 2024-06-03 08:00 UTC = 09:00 in London
    assert schedule_of(trigger).next_run == dt.datetime(2024, 6, 4, 5, 30, tzinfo=dt.timezone.utc)
    trigger.enabled = False
    trigger.save()
    assert not Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").exists()
    trigger.enabled = True
    trigger.save()
    name = f"etl:trigger:{trigger.pk}"
    assert Schedule.objects.filter(name=name).exists()
    trigger.delete()
    assert not Schedule.objects.filter(name=name).exists()


def test_a_due_trigger_starts_its_project_once_and_moves_to_the_next_time(project, add_task, add_trigger, clock):
    task = add_task("Orders")
    trigger = add_trigger(project, minute="*/15", jitter_seconds=30)
    due = scheduling.arm(trigger, clock.now)
    assert due == clock.now + dt.timedelta(minutes=15)
    assert dt.timedelta(0) <= schedule_of(trigger).next_run - due <= dt.timedelta(seconds=30)
    assert fire(trigger, clock.now) == "not due: re-armed"
    assert fire(trigger, clock.set(due + dt.timedelta(seconds=3))) == "started 1 run(s)"
    run = task.runs.get()
    assert (run.status, run.trigger, run.scheduled_for, run.trigger_source) == ("queued", "schedule", due, trigger)
    trigger.refresh_from_db()
    assert trigger.next_run_at == due + dt.timedelta(minutes=15) and trigger.last_fired_at == clock.now
    assert drain(clock.now)[0].status == Run.Status.SUCCEEDED


@pytest.mark.parametrize("policy", ["run_once", "skip"])
def test_after_downtime_missed_runs_follow_the_project_policy_never_catching_up(project, add_task, add_trigger,
                                                                               clock, policy):
    project.missed_runs = policy
    project.save()
    task = add_task("Orders")
    trigger = add_trigger(project, minute="0")
    due = scheduling.arm(trigger, clock.now)
    assert fire(trigger, clock.set(due + dt.timedelta(hours=3, minutes=20))).startswith(
        "started" if policy == "run_once" else "missed")
    run = task.runs.get()
    log = " ".join(run.log_lines.values_list("message", flat=True))
    assert "3 earlier start(s) of this trigger were missed" in log
    assert run.scheduled_for == due + dt.timedelta(hours=3)  # the latest time it was due
    if policy == "run_once":
        assert run.status == "queued" and "running once now (project policy)" in log
    else:
        assert run.status == "skipped" and run.error.startswith("Missed start skipped (project policy)")
    trigger.refresh_from_db()
    assert trigger.next_run_at == due + dt.timedelta(hours=4)
    drain(clock.now)
    fire(trigger, clock.set(trigger.next_run_at + dt.timedelta(seconds=1)))
    assert task.runs.count() == 2 and task.runs.order_by("-id").first().status == "queued"


def test_a_disabled_project_or_task_is_never_started_and_enabling_waits_for_the_next_time(
        project, add_task, add_trigger, clock):
    on, off = add_task("On"), add_task("Off", enabled=False)
    trigger = add_trigger(project, minute="0")
    project.enabled = False
    project.save()
    due = scheduling.arm(trigger, clock.now)
    assert fire(trigger, clock.set(due)) == "project disabled"
    assert not Run.objects.exists()
    project.enabled = True
    project.save()
    clock.advance(minutes=10)  # enabled between two trigger times: nothing runs until the next one
    assert fire(trigger, clock.now) == "not due: re-armed"
    fire(trigger, clock.set(due + dt.timedelta(hours=1)))
    assert statuses(on) == ["queued"] and statuses(off) == []
    assert "missed" not in " ".join(on.runs.get().log_lines.values_list("message", flat=True))


def test_series_runs_by_rank_then_name_and_marks_the_rest_skipped_when_one_fails(project, add_task):
    later = add_task("Zulu", run_rank=2)
    first_b = add_task("Bravo", run_rank=1)
    first_a = add_task("Alpha", run_rank=1)
    last = add_task("Yankee", run_rank=3)
    runs = orchestration.start_project(project, Run.Trigger.MANUAL)
    assert [run.task.name for run in runs] == ["Alpha", "Bravo", "Zulu", "Yankee"]
    assert [run.task.name for run in drain()] == ["Alpha", "Bravo", "Zulu", "Yankee"]

    later.query = "SELECT * FROM no_such_table"
    later.save()
    orchestration.start_project(project, Run.Trigger.MANUAL)
    done = drain()
    assert [(run.task.name, run.status) for run in done] == [("Alpha", "succeeded"), ("Bravo", "succeeded"),
                                                             ("Zulu", "failed")]
    skipped = last.runs.order_by("-id").first()
    assert skipped.status == "skipped" and skipped.error == "Skipped (upstream failed): Zulu failed"
    assert statuses(first_a) == statuses(first_b) == ["succeeded", "succeeded"]


def test_parallel_projects_start_everything_bounded_by_max_parallel(project, add_task):
    project.mode, project.max_parallel = Project.Mode.PARALLEL, 2
    project.save()
    tasks = [add_task(f"Feed {n}") for n in range(3)]
    runs = orchestration.start_project(project)
    assert all(run.upstream_run is None and run.status == "queued" for run in runs)
    claimed = [orchestration.claim_next(f"w:{n}:1") for n in range(3)]
    assert claimed[2] is None and None not in claimed[:2]  # the third waits for a free slot
    Run.objects.filter(pk=claimed[0]).update(status=Run.Status.SUCCEEDED)
    assert orchestration.claim_next("w:3:1") == runs[2].pk
    assert [statuses(task) for task in tasks] == [["succeeded"], ["running"], ["running"]]


def test_priority_decides_which_queued_run_starts_first(project, add_task):
    low, high, middle = add_task("Low", priority=90), add_task("High", priority=1), add_task("Middle", priority=40)
    for task in (low, high, middle):
        queueing.enqueue_run(task)
    assert [run.task.name for run in drain()] == ["High", "Middle", "Low"]


def test_dependencies_all_and_any_on_success_failure_completion_across_projects(
        project, other_project, add_task):
    extract = add_task("Extract")
    broken = add_task("Broken", failing=True)
    load = add_task("Load", project=other_project)  # ALL: extract succeeded AND broken failed
    Dependency.objects.create(upstream=extract, downstream=load, on="success")
    Dependency.objects.create(upstream=broken, downstream=load, on="failure")
    alert = add_task("Alert", project=other_project, dependency_mode="any")  # ANY: either failed
    Dependency.objects.create(upstream=extract, downstream=alert, on="failure")
    Dependency.objects.create(upstream=broken, downstream=alert, on="failure")
    audit = add_task("Audit", project=other_project)
    Dependency.objects.create(upstream=load, downstream=audit, on="completion")
    publish = add_task("Publish", project=other_project)
    Dependency.objects.create(upstream=extract, downstream=publish, on="failure")
    report = add_task("Report", project=other_project)
    Dependency.objects.create(upstream=publish, downstream=report, on="completion")

    project.mode = Project.Mode.PARALLEL
    project.save()
    orchestration.start_project(project)
    drain()
    outcome = {task.name: (statuses(task), task.runs.order_by("-id").first().error)
               for task in (load, alert, audit, publish, report)}
    assert outcome["Load"][0] == ["succeeded"]
    assert outcome["Alert"][0] == ["succeeded"]
    assert outcome["Audit"][0] == ["succeeded"]
    assert outcome["Publish"] == (["skipped"], "Skipped: Extract succeeded (runs on failure)")
    assert outcome["Report"][0] == ["skipped"] and "Publish skipped" in outcome["Report"][1]
    started = load.runs.get()
    assert started.trigger == "dependency" and started.upstream_run.task in (extract, broken)


def test_a_dependency_that_closes_a_loop_is_refused_naming_it(project, add_task):
    a, b, c = add_task("Alpha"), add_task("Bravo"), add_task("Charlie")
    Dependency.objects.create(upstream=a, downstream=b)
    Dependency.objects.create(upstream=b, downstream=c)
    with pytest.raises(ValidationError, match="Charlie → Alpha → Bravo → Charlie"):
        orchestration.validate_no_cycle(c, a)
    with pytest.raises(ValidationError, match="cannot depend on itself"):
        orchestration.validate_no_cycle(a, a)
    form = DependencyForm(data={"upstream": c.pk, "downstream": a.pk, "on": "success"})
    assert not form.is_valid() and "would create a cycle" in form.errors["upstream"][0]
    Dependency.objects.create(upstream=c, downstream=a)  # saved behind the form's back, as a page would first
    assert [t.name for t in orchestration.find_cycle(a)] == ["Alpha", "Bravo", "Charlie", "Alpha"]


def test_retries_are_new_runs_linked_to_the_first_with_capped_exponential_back_off(project, add_task, clock):
    task = add_task("Flaky", failing=True, retries=3, retry_delay_seconds=10, retry_backoff=True,
                    retry_max_delay_seconds=25)
    after = add_task("After", run_rank=5)
    first = orchestration.start_project(project, now=clock.now)[0]
    waits = []
    for attempt in range(4):
        (done,) = drain(clock.now)
        assert done.status == "failed" and done.attempt == attempt + 1
        retry = task.runs.filter(status="queued").first()
        if retry is None:
            break
        assert (retry.trigger, retry.first_attempt, retry.attempt) == ("retry", first, attempt + 2)
        assert Schedule.objects.get(name=f"etl:retry:{retry.pk}").next_run == retry.not_before
        waits.append(int((retry.not_before - clock.now).total_seconds()))
        assert drain(clock.now) == []  # not before its time
        clock.set(retry.not_before)
    assert waits == [10, 20, 25]
    assert statuses(task) == ["failed"] * 4
    assert after.runs.get().error == "Skipped (upstream failed): Flaky failed"


def test_cancel_retry_is_refused_while_running_and_stops_pending_retries(project, add_task, clock):
    task = add_task("Flaky", failing=True, retries=2, retry_delay_seconds=600)
    queueing.enqueue_run(task)
    drain(clock.now)
    retry = orchestration.pending_retries(task).get()
    running = Run.objects.create(task=task, status=Run.Status.RUNNING)
    with pytest.raises(orchestration.Refused, match="is running: its retries cannot be cancelled now"):
        orchestration.cancel_retries(task)
    running.delete()
    assert orchestration.cancel_retries(task) == "1 pending retry of Flaky cancelled."
    retry.refresh_from_db()
    assert retry.status == "cancelled" and retry.error == "Retry cancelled"
    assert not Schedule.objects.filter(name=f"etl:retry:{retry.pk}").exists()
    with pytest.raises(orchestration.Refused, match="has no pending retry"):
        orchestration.cancel_retries(task)


def test_a_trigger_firing_while_the_task_still_runs_is_skipped_and_logged(project, add_task, add_trigger, clock):
    task = add_task("Long", max_instances=1)
    trigger = add_trigger(project, minute="*")
    Run.objects.create(task=task, status=Run.Status.RUNNING)
    due = scheduling.arm(trigger, clock.now)
    assert fire(trigger, due) == "started 0 run(s), 1 skipped"
    skipped = task.runs.order_by("-id").first()
    assert skipped.status == "skipped" and "still running from an earlier start (at most 1 at once)" in skipped.error
    task.max_instances = 2
    task.save()
    assert fire(trigger, due + dt.timedelta(minutes=1)) == "started 1 run(s)"


def test_a_queued_run_is_cancelled_at_once_and_a_finished_one_cannot_be(project, add_task):
    task = add_task("Orders")
    run = queueing.enqueue_run(task)
    assert orchestration.cancel_run(run) == f"Run #{run.pk} was cancelled before it started."
    run.refresh_from_db()
    assert run.status == "cancelled" and drain() == []
    with pytest.raises(orchestration.Refused, match="already ended \\(cancelled\\)"):
        orchestration.cancel_run(run)


def test_the_reaper_fails_a_run_whose_worker_died_and_retries_it(project, add_task, clock):
    task = add_task("Orders", retries=1, retry_delay_seconds=0)
    run = queueing.enqueue_run(task)
    assert Run.objects.claim(run.pk, "gone-host:4242:1")
    Run.objects.filter(pk=run.pk).update(lease_expires_at=clock.now - dt.timedelta(seconds=1))
    assert execution.reap_interrupted_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("Interrupted: worker gone-host:4242:1 stopped renewing")
    retry = task.runs.get(trigger="retry")
    assert retry.first_attempt == run and retry.status == "queued"
    assert drain()[0] == retry and statuses(task) == ["failed", "succeeded"]


def test_cleanup_removes_orphan_schedules_and_restores_missing_ones(project, add_trigger, add_task):
    kept, gone = add_trigger(project, hour="1"), add_trigger(project, hour="2")
    gone_id = gone.pk
    gone.delete()
    # As after restoring an older database: a schedule whose trigger is gone, a trigger without its schedule.
    Schedule.objects.create(name=f"etl:trigger:{gone_id}", func=scheduling.FIRE, args=str(gone_id))
    Schedule.objects.filter(name=f"etl:trigger:{kept.pk}").delete()
    finished = Run.objects.create(task=add_task("Orders"), status=Run.Status.SUCCEEDED)
    Schedule.objects.create(name=f"etl:retry:{finished.pk}", func="runs.execution.execute_next")
    assert scheduling.cleanup_orphan_schedules() == ("2 orphan schedule(s) removed, "
                                                     "1 missing schedule(s) restored")
    names = set(Schedule.objects.values_list("name", flat=True))
    assert f"etl:trigger:{kept.pk}" in names
    assert not {f"etl:trigger:{gone_id}", f"etl:retry:{finished.pk}"} & names
    # The reaper is no schedule any more (the housekeeping loop reaps): clean-up leaves none behind.
    assert not Schedule.objects.filter(name=scheduling.REAPER_NAME).exists()


def test_reschedule_removes_and_recreates_the_schedules_of_a_project_or_task(project, add_trigger, add_task,
                                                                            clock):
    task = add_task("Flaky", failing=True, retries=1, retry_delay_seconds=60)
    trigger = add_trigger(project, hour="3")
    Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").update(next_run=clock.now, func="wrong.place")
    queueing.enqueue_run(task)
    drain(clock.now)
    Schedule.objects.filter(name__startswith="etl:retry:").delete()
    assert scheduling.reschedule(task=task, now=clock.now) == 2
    assert schedule_of(trigger).func == scheduling.FIRE
    assert schedule_of(trigger).next_run == dt.datetime(2024, 6, 4, 3, tzinfo=dt.timezone.utc)
    assert Schedule.objects.filter(name__startswith="etl:retry:").count() == 1
