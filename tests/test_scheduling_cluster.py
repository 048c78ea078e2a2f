"""A real `manage.py qcluster` on the test database: a per-second trigger, the Run button, a worker killed mid-run.

These are the only scheduling tests that wait for real time; each stays within a few seconds.
"""
import datetime as dt
import os
import time

import pytest
from django_q.models import Schedule

from runs import queueing
from tests.fixtures.scheduling import kill_hard, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_real_cluster_fires_a_per_second_trigger_on_time(qcluster, housekeeper, project, add_task, add_trigger):
    task = add_task("Ticker")
    trigger = add_trigger(project, second="*")
    done = wait_for(lambda: list(task.runs.filter(status="succeeded").order_by("scheduled_for"))
                    if task.runs.filter(status="succeeded").count() >= 3 else None, timeout=20,
                    message=f"three scheduled runs\n{qcluster.log()[-2000:]}")
    trigger.enabled = False
    trigger.save()
    assert all(run.trigger == "schedule" and run.trigger_source_id == trigger.pk for run in done)
    moments = [run.scheduled_for for run in done[:3]]
    assert all(moment.microsecond == 0 for moment in moments) and len(set(moments)) == 3
    assert all(dt.timedelta(0) <= run.started_at - run.scheduled_for < dt.timedelta(seconds=2) for run in done)
    assert not Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}").exists()


def test_the_run_button_is_executed_by_the_real_cluster(qcluster, client, owner, add_task):
    task = add_task("Orders export")
    client.force_login(owner)
    response = client.post(f"/tasks/{task.pk}/run/")
    run = task.runs.get()
    assert response.status_code == 302 and run.trigger == "manual"
    wait_for(lambda: task.runs.filter(status="succeeded").exists(), timeout=15, message="the run to finish")
    run.refresh_from_db()
    host, pid, _ = run.worker.split(":")
    assert int(pid) in qcluster.worker_pids() and int(pid) != os.getpid()
    assert run.files.get().name == "Orders_export.csv"
    assert "Finished successfully" in run.log_lines.values_list("message", flat=True)


def test_a_worker_killed_mid_run_is_failed_as_interrupted_and_retried(qcluster, housekeeper, add_task):
    task = add_task("Crashing extract", slow=True, retries=1, retry_delay_seconds=3600)
    run = queueing.enqueue_run(task)
    wait_for(lambda: task.runs.filter(pk=run.pk, status="running").exists(), timeout=15, message="the run to start")
    run.refresh_from_db()
    worker_pid = int(run.worker.split(":")[1])
    assert worker_pid in qcluster.worker_pids()
    kill_hard(worker_pid)
    killed_at = time.monotonic()
    # The lease (2 s here, 60 s by default) lapses; the housekeeping loop reaps within a second of that.
    wait_for(lambda: task.runs.filter(pk=run.pk, status="failed").exists(), timeout=20,
             message=f"the reaper\n{qcluster.log()[-2000:]}")
    run.refresh_from_db()
    assert run.error.startswith(f"Interrupted: worker {run.worker} stopped renewing its lease")
    assert time.monotonic() - killed_at < 10
    # The retry is made just after the failure is recorded (a transaction of its own): wait for it.
    retry = wait_for(lambda: task.runs.filter(trigger="retry").first(), timeout=5, message="the retry")
    assert (retry.status, retry.attempt, retry.first_attempt_id) == ("queued", 2, run.pk)
    assert qcluster.process.poll() is None and worker_pid not in qcluster.worker_pids()
    assert not task.runs.filter(status="running").exists()
