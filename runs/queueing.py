"""Queueing runs: a run is created queued and django-q2 is asked for a worker once the transaction commits.

Every queued run has one django-q2 task asking a worker to run *the best queued run* (runs/execution.py
`execute_next`), so when more runs are due than workers are free, priority decides. A retry that waits has a
one-off django-q2 Schedule instead, "etl:retry:<run id>", that wakes a worker when its wait is over.
"""
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from runs.models import Run

EXECUTE_NEXT = "runs.execution.execute_next"
RETRY_PREFIX = "etl:retry:"


def _schedules():
    return Schedule.objects


def submit(count=1, hint=None):
    """Ask django-q2 for `count` workers, each to run the best queued run, once the transaction commits."""
    from django_q.tasks import async_task

    def send():
        for _ in range(count):
            # save=False: the run row is the record; django-q2 still keeps failures.
            async_task(EXECUTE_NEXT, hint, task_name=f"run-{hint}" if hint else None, group="runs", save=False)

    if count > 0:
        transaction.on_commit(send)


def enqueue_run(task, trigger=Run.Trigger.MANUAL, user=None, scheduled_for=None, **fields):
    """Create a queued run and hand it to django-q2 once the transaction commits."""
    fields.setdefault("priority", task.priority)
    run = Run.objects.create(task=task, trigger=trigger, requested_by=user,
                             scheduled_for=scheduled_for or timezone.now(), **fields)
    run.log(f"Queued ({run.get_trigger_display().lower()}{' by ' + user.username if user else ''})")
    if not run.not_before or run.not_before <= timezone.now():
        submit(hint=run.pk)
    return run


def schedule_retry(run):
    """A one-off Schedule that wakes a worker when the retry's wait is over."""
    _schedules().filter(name=f"{RETRY_PREFIX}{run.pk}").delete()
    _schedules().create(name=f"{RETRY_PREFIX}{run.pk}", func=EXECUTE_NEXT, args=str(run.pk),
                        schedule_type=Schedule.ONCE, repeats=-1, next_run=run.not_before)


def remove_retry_schedule(run):
    _schedules().filter(name=f"{RETRY_PREFIX}{run.pk}").delete()
