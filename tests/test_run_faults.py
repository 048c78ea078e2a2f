"""Runs that survive faults: a worker whose lease renewals fail is fenced off and never delivers twice; a retry
is created once per failed attempt; a fenced worker's writes change nothing.

The cluster test uses a real `manage.py qcluster` (tests/fixtures/scheduling.py) whose lease renewals for first
attempts are made to fail (ETL_TEST_FAIL_LEASE_RENEWAL, a test-only setting), as when only the watcher's
connection is cut; another has a worker killed with SIGKILL mid-run. Executions are counted by the source
database (tests/fixtures/faults.py), deliveries at the destination: one folder per run.
"""
import datetime as dt
import os
import signal
import time

import pytest
from django.utils import timezone
from django_q.models import Schedule

from projects import scheduling
from runs import orchestration, queueing
from runs.models import Run
from tests.fixtures.scheduling import kill_hard, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retry_is_created_once_per_failed_attempt(add_task):
    task = add_task("Flaky", retries=3)
    run = Run.objects.create(task=task, status=Run.Status.FAILED, error="boom")
    first = orchestration.schedule_retry(run)
    again = orchestration.schedule_retry(run)
    assert first is not None and again.pk == first.pk
    assert list(task.runs.filter(trigger="retry").values_list("attempt", "retry_of")) == [(2, run.pk)]


def test_a_fenced_worker_cannot_write_the_outcome(add_task):
    task = add_task("Fenced")
    run = Run.objects.create(task=task)
    assert Run.objects.claim(run.pk, "host:1:1")
    # The reaper failed it and another worker holds the retry; the old worker's late writes change nothing.
    Run.objects.filter(pk=run.pk).update(worker="host:2:2")
    assert not run.mark_succeeded("Finished successfully", owner="host:1:1")
    assert not run.mark_failed("late", owner="host:1:1")
    run.refresh_from_db()
    assert run.status == "running" and not run.log_lines.filter(message="late").exists()


def bring_the_reaper_forward(seconds=3):
    """The reaper's schedule runs every minute; the tests' lease is 2 s."""
    scheduling.ensure_portal_schedules()
    Schedule.objects.filter(name=scheduling.REAPER_NAME).update(
        next_run=timezone.now() + dt.timedelta(seconds=seconds))


def assert_one_retry_delivered_once(task, counted_source, outbox, executions=2):
    """Attempt 1 failed as Interrupted, its one retry succeeded: every run terminal, `executions` queries at the
    source, one delivery (from the retry)."""
    runs = list(task.runs.order_by("id"))
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "succeeded")]
    assert runs[0].error.startswith("Interrupted") and runs[1].retry_of_id == runs[0].pk
    assert counted_source.executions() == executions  # counted by the source database, not the app
    assert outbox.delivered() == [runs[1].pk]
    assert not runs[0].files.exists() and runs[1].files.count() == 1
    return runs


def test_a_worker_that_loses_only_its_lease_connection_delivers_once(start_cluster, counted_task, counted_source,
                                                                    outbox):
    cluster = start_cluster(ETL_TEST_FAIL_LEASE_RENEWAL="1")
    task = counted_task("Lease lost", retries=1, retry_delay_seconds=0)
    run = queueing.enqueue_run(task)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status="running").exists(), timeout=15, message="the start")
    # Renewals of attempt 1 fail: its worker gives the lease up within 1.5 s (lease 2 s) and stops without
    # delivering; the reaper (brought forward) fails the run and retries it once; the retry renews and delivers.
    bring_the_reaper_forward()
    wait_for(lambda: task.runs.filter(status__in=Run.FINISHED).count() == 2, timeout=40,
             message=lambda: f"both attempts to end\n{cluster.log()[-3000:]}")
    time.sleep(3)  # anything a fenced worker would still do happens now
    runs = assert_one_retry_delivered_once(task, counted_source, outbox)
    log = cluster.log()
    assert f"Run {runs[0].pk}: lease lost" in log and f"Run {runs[1].pk}: lease lost" not in log


def test_a_worker_killed_mid_run_is_retried_once_and_delivers_once(start_cluster, counted_task, counted_source,
                                                                   outbox):
    cluster = start_cluster()
    task = counted_task("Killed", retries=1, retry_delay_seconds=0)
    run = queueing.enqueue_run(task)
    wait_for(lambda: counted_source.executions() == 1, timeout=15, message="the query to start")
    run.refresh_from_db()
    worker_pid = int(run.worker.split(":")[1])
    assert run.status == "running" and worker_pid in cluster.worker_pids()
    kill_hard(worker_pid)
    bring_the_reaper_forward()
    wait_for(lambda: task.runs.filter(status__in=Run.FINISHED).count() == 2, timeout=40,
             message=lambda: f"both attempts to end\n{cluster.log()[-3000:]}")
    time.sleep(2)  # a second retry or delivery would show now
    runs = assert_one_retry_delivered_once(task, counted_source, outbox)
    assert runs[0].error.startswith(f"Interrupted: worker {runs[0].worker} stopped renewing its lease")
    assert cluster.process.poll() is None and worker_pid not in cluster.worker_pids()


def test_sigterm_hands_a_long_run_back_and_a_new_cluster_completes_it_once(start_cluster, counted_task,
                                                                           counted_source, outbox):
    cluster = start_cluster(ETL_SHUTDOWN_GRACE_SECONDS="1")
    task = counted_task("Restarted", seconds=8, retries=1, retry_delay_seconds=0)
    run = queueing.enqueue_run(task)
    wait_for(lambda: counted_source.executions() == 1, timeout=15, message="the query to start")
    # As systemd stops a service (KillMode=control-group): SIGTERM to every process of the cluster.
    for pid in [cluster.process.pid, *cluster.worker_pids()]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_for(lambda: Run.objects.filter(pk=run.pk).exclude(status="running").exists(), timeout=20,
             message=lambda: f"the run to be handed back\n{cluster.log()[-3000:]}")
    run.refresh_from_db()
    assert run.status == "queued" and not run.worker and not run.error, cluster.log()[-3000:]
    assert run.log_lines.filter(message__startswith="Handed back to the queue").exists()
    wait_for(lambda: "did not finish within the shutdown grace; handing it back" in cluster.log(), timeout=5)
    # django-q2's main process may still wait for its workers' results (see the report); it has no run left.
    for pid in [*cluster.worker_pids(), cluster.process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cluster.process.wait(timeout=10)
    again = start_cluster()
    wait_for(lambda: Run.objects.filter(pk=run.pk, status__in=Run.FINISHED).exists(), timeout=30,
             message=lambda: f"the run to end\n{again.log()[-3000:]}")
    time.sleep(2)
    run.refresh_from_db()
    assert run.status == "succeeded" and task.runs.count() == 1  # no Interrupted failure, no retry
    assert counted_source.executions() == 2 and outbox.delivered() == [run.pk]
    assert not run.log_lines.filter(message__startswith="Interrupted").exists()
