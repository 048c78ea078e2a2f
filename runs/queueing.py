"""Queueing runs: a run is created queued and django-q2 is asked for a worker once the transaction commits.

Every queued run has one django-q2 task asking a worker to run *the best queued run* (runs/execution.py
`execute_next`), so when more runs are due than workers are free, priority decides. A retry that waits has a
one-off django-q2 Schedule instead, "etl:retry:<run id>", that wakes a worker when its wait is over.

The run row is the record, the broker message only a wake-up: when the broker is down, `submit` logs it and
carries on (the run stays queued and saved), and `kick_stalled_runs` (runs/execution.py, called every few
seconds by the housekeeping loop) sends the message once the broker is back. Callers that tell a person
(commands, pages) compare `failed_sends()` before and after, and say `BROKER_DOWN`.
"""
import logging
import threading

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from runs.models import Run

logger = logging.getLogger(__name__)
EXECUTE_NEXT = "runs.execution.execute_next"
RETRY_PREFIX = "etl:retry:"
BROKER_DOWN = "queued; the broker is unreachable, it will start when it returns"
_sends = threading.local()


def failed_sends():
    """How many sends failed in this thread so far (the broker was unreachable)."""
    return getattr(_sends, "failed", 0)


def _schedules():
    return Schedule.objects


def submit(count=1, hint=None):
    """Ask django-q2 for `count` workers, each to run the best queued run, once the transaction commits."""
    from django_q.tasks import async_task

    def send():
        try:
            for _ in range(count):
                # save=False: the run row is the record; django-q2 still keeps failures.
                async_task(EXECUTE_NEXT, hint, task_name=f"run-{hint}" if hint else None, group="runs",
                           save=False)
        except Exception as exc:  # the broker is down: never fail the caller, whose run is saved
            _sends.failed = failed_sends() + 1
            logger.warning("Could not reach the broker (%s: %s); queued runs start when it returns",
                           type(exc).__name__, exc)

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


def rerun(run, user=None):
    """Queue the failed `run` again for the same date (its `scheduled_for`); None when it is not failed or was
    already rerun: one rerun per failed run, held by the unique `rerun_of`, so a double submit or two people at
    once queue one. The caller checks the right (editor) through projects.access."""
    if run.status != Run.Status.FAILED:
        return None
    try:
        with transaction.atomic():  # a savepoint: the losing insert leaves the caller's transaction usable
            again = enqueue_run(run.task, Run.Trigger.MANUAL, user, scheduled_for=run.scheduled_for, rerun_of=run)
    except IntegrityError:
        return None
    again.log(f"Rerun of run {run.pk}, for its date")
    return again


def rerun_all(runs, user=None):
    """Rerun each of `runs` (see `rerun`); return (the new runs, how many were not rerun)."""
    made = [again for again in (rerun(run, user) for run in runs) if again is not None]
    return made, len(runs) - len(made)


def schedule_retry(run):
    """A one-off Schedule that wakes a worker when the retry's wait is over."""
    _schedules().filter(name=f"{RETRY_PREFIX}{run.pk}").delete()
    _schedules().create(name=f"{RETRY_PREFIX}{run.pk}", func=EXECUTE_NEXT, args=str(run.pk),
                        schedule_type=Schedule.ONCE, repeats=-1, next_run=run.not_before)


def remove_retry_schedule(run):
    _schedules().filter(name=f"{RETRY_PREFIX}{run.pk}").delete()
