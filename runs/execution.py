"""Executing runs: claim one, run its pipeline under a lease, record the outcome; and recover runs whose worker
died.

django-q2 calls `execute_next` (queued by runs/queueing.py), commands and tests `execute_run`. A worker claims
the best queued run that may start (runs/orchestration.py `claim_next`: highest priority first, within the
project's and the task's limits, its connections' run slots and its backfill batch's turn) with a conditional update (runs/models.py), keeps it under a lease
(runs/leases.py) while `run_pipeline` (runs/pipeline.py) runs the stages, with the run's cancellation scope
open (etl_portal/cancellation.py), then records the outcome, sends the notifications and lets the
orchestration decide what follows. `reap_interrupted_runs` fails the runs whose lease lapsed, and
`kick_stalled_runs` wakes workers for queued runs nobody is about to pick up.
"""
import datetime
import logging

from django.conf import settings
from django.db import close_old_connections, connection as db_connection
from django.db.models import Q
from django.utils import timezone

from alerts import outbox
from connections.protocols import ConnectorError
from connections.secrets import scrub
from etl_portal import cancellation
from etl_portal.cancellation import LEASE_LOST, RunStopped
from runs import notifications, orchestration, shutdown, windows
from runs.leases import LeaseKeeper, effective_timeout, worker_id
from runs.models import Run
from runs.pipeline import run_pipeline
from runs.queueing import submit

logger = logging.getLogger(__name__)


def _drop_stale_connection():
    """Like django-q2 does before a job; never inside a caller's open transaction (a test, an atomic block)."""
    if not db_connection.in_atomic_block:
        close_old_connections()


# --- executing ---------------------------------------------------------------------------------------------

def execute_run(run_id, worker=None):
    """Claim and execute exactly this run. Never raises: every failure ends as a failed run with its reason."""
    _drop_stale_connection()
    worker = worker or worker_id()
    if not Run.objects.claim(run_id, worker):
        logger.info("Run %s was not queued any more; another worker has it or it was cancelled", run_id)
        return "not claimed"
    return _execute_claimed(run_id, worker)


def execute_next(hint=None, worker=None, now=None):
    """django-q2's entry point: claim the best queued run that may start now and execute it."""
    _drop_stale_connection()
    worker = worker or worker_id()
    run_id = orchestration.claim_next(worker, now=now)
    if run_id is None:
        return "nothing to run"
    return _execute_claimed(run_id, worker, now)


def _execute_claimed(run_id, worker, now=None):
    run = Run.objects.select_related("task__project", "task__source_connection").get(pk=run_id)
    run.log(f"Started on {worker.rsplit(':', 1)[0]} (attempt {run.attempt})")
    secrets, error = [], None
    timeout = effective_timeout(run.task)
    # `shutdown.running` covers what follows the outcome too: a worker told to stop exits only after the run's
    # notifications went out and its retry or successors were decided.
    with shutdown.running(run_id, worker):
        with cancellation.scope(run_id), LeaseKeeper(run_id, worker, timeout) as keeper:
            keeper.attempt = run.attempt
            warnings, stopped = [], True
            try:
                secrets = run.secrets
                warnings = run_pipeline(run, secrets)
                stopped = False  # the work was done: a stop asked for meanwhile came too late to matter
            except RunStopped:
                pass
            except ConnectorError as exc:
                error = scrub(exc.message, secrets)
            except Exception as exc:
                logger.error("Run %s failed unexpectedly: %s", run_id, type(exc).__name__)
                error = scrub(f"Unexpected error: {type(exc).__name__}: {exc}", secrets)
            reason = keeper.stop_reason if stopped else None
            if reason == LEASE_LOST or (stopped and keeper.lost):
                # Fenced off: the reaper fails the run and retries it; this worker writes nothing more.
                logger.warning("Run %s: stopped after its lease was lost; its outcome is left to the reaper", run_id)
                return "fenced"
            if reason == shutdown.SHUTTING_DOWN:
                shutdown.hand_back(run, worker)
                return "handed back"
            finished = _record_outcome(run, worker, reason, error, warnings, timeout)
        if not finished:
            # Another writer ended the run first (the reaper after a lapsed lease, an operator): it decides what
            # follows.
            logger.warning("Run %s was no longer held by %s when it ended; nothing follows from this worker",
                           run_id, worker)
            return "fenced"
        notifications.notify(run)
        outbox.queue_run_event(run)  # webhooks: sent by the housekeeping leader, never by this worker
        orchestration.after_run_safely(run, now=now)
    return run.status


def _record_outcome(run, worker, stop_reason, error, warnings, timeout):
    """Write the outcome, only while `worker` holds the run; True when it did."""
    if stop_reason == "cancelled":
        if error:
            run.log(error, level="warning")
        return run.finish(Run.Status.CANCELLED, "Cancelled while running", "Cancelled: the run was stopped",
                          "warning", owner=worker)
    if stop_reason == "timeout":
        if error:
            run.log(error, level="warning")
        return run.mark_failed(f"Timed out: the run took longer than its limit of {timeout} seconds and was "
                               f"stopped", owner=worker)
    if error:
        return run.mark_failed(error, owner=worker)
    if warnings:
        return run.finish(Run.Status.WARNING, "; ".join(warnings), owner=worker)
    return run.mark_succeeded("Finished successfully", owner=worker)


# --- recovery ----------------------------------------------------------------------------------------------

def reap_interrupted_runs(now=None):
    """Fail every running run whose lease lapsed (its worker died or lost the database), then retry it under
    the task's policy; and wake workers for queued runs nobody is about to pick up."""
    reaped = 0
    for run in Run.objects.lease_expired().select_related("task"):
        if run.cancel_requested:
            finished = run.finish(Run.Status.CANCELLED, "Cancelled; the worker stopped before confirming it")
        else:
            finished = run.mark_failed(f"Interrupted: worker {run.worker or '?'} stopped renewing its lease "
                                       f"(it crashed or was killed)")
        if finished:
            reaped += 1
            outbox.queue_run_event(run)
            orchestration.after_run_safely(run, now=now)
    kick_stalled_runs(now=now)
    return reaped


def kick_stalled_runs(now=None, older_than=5):
    """Queued runs that may start but have no django-q2 task waiting (a lost broker message, or one that could not
    be sent while the broker was down): send some. Cheap (one count, one queue-size look-up), so the
    housekeeping loop calls it every few seconds and a run queued while the broker was down starts within
    seconds of its return."""
    from django_q.brokers import get_broker

    now = now or timezone.now()
    stalled = Q(created_at__lt=now - datetime.timedelta(seconds=older_than))
    # A run whose maintenance window just ended had its message used up by a worker that found it held: wake one
    # at once rather than `older_than` after it was queued.
    reopened = windows.tasks_reopened(now, older_than)
    if reopened:
        stalled |= Q(task_id__in=reopened)
    stalled = orchestration.claimable(now).filter(stalled).count()
    if not stalled:
        return 0
    try:
        waiting = get_broker().queue_size()
    except Exception:  # a broker we cannot ask: sending a few extra tasks is harmless
        waiting = 0
    count = min(stalled, 2 * int(settings.Q_CLUSTER.get("workers", 2))) if not waiting else 0
    submit(count)
    return count
