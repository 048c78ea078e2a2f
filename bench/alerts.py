"""late_alert_delay: the time from a run crossing its deadline to its alert being recorded (goal <= 60 s), with a
real `manage.py qcluster` (2 workers, both busy) and `manage.py housekeeping` beside it, as `serve` starts them.

Embedded setup (SQLite + the ORM broker, the default install), in a child process like bench/scheduling.py. Two
CPU-heavy runs keep both workers busy and cross their maximum duration (3 s) while running; eighteen more runs
wait queued behind them and cross their "finish by" times, one a second. delay = alert.raised_at - the deadline.
"""
import datetime as dt
import json
import os
import subprocess
import sys

from bench.scheduling import HEAVY_QUERY, ROOT, benchmark_cluster, percentile, wait_until

HEAVY = 2
QUEUED = 18
GOAL = 60.0


def main():
    from bench.common import emit

    result = subprocess.run([sys.executable, "-m", "bench.alerts", "embedded"], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ})
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        emit("late_alert_delay", 0, "error", error=(result.stderr or result.stdout)[-800:])
    for line in lines:
        emit(**line)


def measure():
    from django.utils import timezone

    from alerts.models import Alert
    from bench.scheduling import fixtures
    from projects.models import Project
    from runs.models import Run
    from runs.queueing import enqueue_run
    from tasks.models import Task

    from projects.housekeeping import leader_status

    projects, tasks = fixtures(HEAVY + QUEUED)
    # Measured from a running loop: its start-up (Django set-up, taking the lease) is not the check's delay.
    if not wait_until(lambda: leader_status() is not None, timeout=60):
        raise RuntimeError("no housekeeping leader")
    Project.objects.update(start_grace=None)  # only lateness is measured
    heavy = []
    for index in range(HEAVY):
        Task.objects.filter(pk=tasks[index].pk).update(query=HEAVY_QUERY, max_duration=dt.timedelta(seconds=3))
        heavy.append(enqueue_run(Task.objects.get(pk=tasks[index].pk)))
    if not wait_until(lambda: Run.objects.filter(pk__in=[r.pk for r in heavy], status="running").count() == HEAVY,
                      timeout=60):
        raise RuntimeError("the heavy runs did not start")
    first = (timezone.now() + dt.timedelta(seconds=4)).replace(microsecond=0)
    queued = []
    for offset, task in enumerate(tasks[HEAVY:]):
        Task.objects.filter(pk=task.pk).update(finish_by=(first + dt.timedelta(seconds=offset)).time())
        queued.append(enqueue_run(Task.objects.get(pk=task.pk)))
    expected = HEAVY + QUEUED
    complete = wait_until(lambda: Alert.objects.filter(kind="late").count() >= expected, timeout=QUEUED + 90)
    delays = [(alert.raised_at - alert.due_at).total_seconds() for alert in Alert.objects.filter(kind="late")]
    Run.objects.filter(status="running").update(cancel_requested=True)
    return delays, complete, expected


def child(setup):
    with benchmark_cluster(setup):
        from bench.common import emit

        delays, complete, expected = measure()
        worst = max(delays) if delays else float("nan")
        emit("late_alert_delay", worst, "s", ref=GOAL, ratio=worst / GOAL, setup=setup,
             measured="alert raised - deadline (max)", alerts=len(delays), expected=expected, complete=complete,
             median=round(percentile(delays, 0.5), 3), p95=round(percentile(delays, 0.95), 3),
             workers_busy=HEAVY)

if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        main()
