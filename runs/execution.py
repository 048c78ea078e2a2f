"""Queueing and executing runs: the one workflow that touches tasks, runs, files and connections.

Views, admin actions, commands and django-q2 call `enqueue_run` / `execute_run` / `execute_next`. Every queued
run has one django-q2 task asking a worker to run *the best queued run* (highest priority first, within the
project's and the task's limits), so when more runs are due than workers are free, priority decides. A run is
claimed with a conditional update and kept under a lease that a watcher thread renews, so two workers never run
one run and a run whose worker died is found by `reap_interrupted_runs`.

Stopping a running run (cancel, or the task's timeout). The watcher notices `Run.cancel_requested` (within about
a second) or the deadline, sets the run's stop event and calls every *cancel callback* registered for the run.
Code that blocks (a query, a script, a transfer) registers one while it blocks::

    from runs.execution import on_cancel
    with on_cancel(connection.cancel_safe):      # psycopg 3: cancel the running statement
        cursor.execute(sql)
    with on_cancel(sqlite_connection.interrupt):  # sqlite3
        ...
    with on_cancel(lambda: os.killpg(process.pid, signal.SIGKILL)):  # a script started with start_new_session
        process.wait()

Long loops may instead call `check_stop()` (raises RunStopped) or `stop_requested()`, or wait on
`stop_event()` (a threading.Event, e.g. the `stop` of an SSH command). Callbacks run on the
watcher thread, must be quick and may raise (the error is logged). Between stages the pipeline checks too, so a
cancelled run never delivers after it was stopped.
"""
import contextlib
import contextvars
import datetime
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection as db_connection, transaction
from django.utils import timezone

from connections.protocols import ConnectorError
from connections.secrets import scrub
from runs import conditions, delivery, notifications, packaging, parameters, pipeline, processing, sources
from runs.context import RunContext
from runs.models import Run, RunFile

logger = logging.getLogger(__name__)
WATCH_SECONDS = 1.0
EXECUTE_NEXT = "runs.execution.execute_next"


def _drop_stale_connection():
    """Like django-q2 does before a job; never inside a caller's open transaction (a test, an atomic block)."""
    if not db_connection.in_atomic_block:
        close_old_connections()


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- queueing --------------------------------------------------------------------------------------------

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


# --- stopping a running run ------------------------------------------------------------------------------

class RunStopped(Exception):
    """Raised inside a run that was cancelled or ran past its timeout."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_current_run = contextvars.ContextVar("etl_current_run", default=None)
_lock = threading.Lock()
_callbacks = {}  # run id -> list of callables
_stops = {}  # run id -> stop reason once stopped
_events = {}  # run id -> threading.Event set when the run is told to stop


class CancelRegistration(contextlib.AbstractContextManager):
    def __init__(self, run_id, callback):
        self.run_id, self.callback = run_id, callback

    def remove(self):
        with _lock:
            callbacks = _callbacks.get(self.run_id, [])
            if self.callback in callbacks:
                callbacks.remove(self.callback)

    def __exit__(self, *exc):
        self.remove()


def on_cancel(callback, run_id=None):
    """Call `callback()` if the run (the current one by default) is cancelled or times out.

    If the run is already stopping, the callback is called at once.
    """
    run_id = run_id or _current_run.get()
    registration = CancelRegistration(run_id, callback)
    if run_id is None:
        return registration  # not inside a run (a connection test, a preview): nothing to stop
    with _lock:
        _callbacks.setdefault(run_id, []).append(callback)
        stopping = run_id in _stops
    if stopping:
        _call(run_id, callback)
    return registration


def stop_requested(run_id=None):
    """"cancelled", "timeout" or None."""
    return _stops.get(run_id or _current_run.get())


def stop_event(run_id=None):
    """A threading.Event set when the run (the current one by default) is cancelled or times out: for code that
    waits on an event (an SSH command, a transfer loop) rather than registering a callback."""
    run_id = run_id or _current_run.get()
    with _lock:
        event = _events.setdefault(run_id, threading.Event())
        if run_id in _stops:
            event.set()
    return event


def check_stop(run_id=None):
    reason = stop_requested(run_id)
    if reason:
        raise RunStopped(reason)


def _call(run_id, callback):
    try:
        callback()
    except Exception as exc:  # a callback failing must not stop the others
        logger.warning("A cancel callback of run %s failed: %s: %s", run_id, type(exc).__name__, exc)


def _stop(run_id, reason):
    with _lock:
        if run_id in _stops:
            return
        _stops[run_id] = reason
        callbacks = list(_callbacks.get(run_id, []))
        _events.setdefault(run_id, threading.Event()).set()
    for callback in callbacks:
        _call(run_id, callback)


class LeaseKeeper:
    """Watches a running run from a background thread: renews its lease, notices cancel and timeout."""

    def __init__(self, run_id, worker, timeout_seconds=None):
        self.run_id, self.worker = run_id, worker
        self.timeout_seconds = timeout_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"lease-{run_id}", daemon=True)
        self.lost = False

    @property
    def stop_reason(self):
        return _stops.get(self.run_id)

    def _watch(self):
        renew_every = max(1.0, settings.ETL_RUN_LEASE_SECONDS / 3)
        started = time.monotonic()
        next_renewal = started + renew_every
        try:
            while not self._done.wait(min(WATCH_SECONDS, renew_every)):
                now = time.monotonic()
                if now >= next_renewal:
                    next_renewal = now + renew_every
                    if not Run.objects.renew_lease(self.run_id, self.worker):
                        self.lost = True
                        return
                if self.stop_reason:
                    continue
                if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                    _stop(self.run_id, "cancelled")
                elif self.timeout_seconds and now - started >= self.timeout_seconds:
                    _stop(self.run_id, "timeout")
        except Exception:  # a watcher failure must not kill the run; the lease simply lapses
            logger.exception("Could not watch run %s", self.run_id)
        finally:
            db_connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)


def effective_timeout(task):
    """The task's own limit, kept under django-q2's timeout so the portal, not django-q2, stops the run."""
    ceiling = max(1, settings.ETL_RUN_TIMEOUT - 30)
    return min(task.timeout_seconds or ceiling, ceiling)


# --- executing ---------------------------------------------------------------------------------------------

def secrets_of(task):
    """Every secret value a run of `task` could meet, so messages can be scrubbed of them (runs/masking.py)."""
    from runs.masking import secret_values

    return secret_values(task)


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
    from runs import orchestration

    _drop_stale_connection()
    worker = worker or worker_id()
    run_id = orchestration.claim_next(worker, now=now)
    if run_id is None:
        return "nothing to run"
    return _execute_claimed(run_id, worker, now)


def _execute_claimed(run_id, worker, now=None):
    from runs import orchestration

    run = Run.objects.select_related("task__project", "task__source_connection").get(pk=run_id)
    run.log(f"Started on {worker.rsplit(':', 1)[0]} (attempt {run.attempt})")
    secrets, error = [], None
    token = _current_run.set(run_id)
    timeout = effective_timeout(run.task)
    try:
        with LeaseKeeper(run_id, worker, timeout) as keeper:
            warnings, stopped = [], True
            try:
                secrets = secrets_of(run.task)
                warnings = run_pipeline(run, secrets)
                stopped = False  # the work was done: a stop asked for meanwhile came too late to matter
            except RunStopped:
                pass
            except ConnectorError as exc:
                error = scrub(exc.message, secrets)
            except Exception as exc:
                logger.error("Run %s failed unexpectedly: %s", run_id, type(exc).__name__)
                error = scrub(f"Unexpected error: {type(exc).__name__}: {exc}", secrets)
            _record_outcome(run, keeper.stop_reason if stopped else None, error, warnings, timeout)
    finally:
        _current_run.reset(token)
        with _lock:
            _callbacks.pop(run_id, None)
            _stops.pop(run_id, None)
            _events.pop(run_id, None)
    notifications.notify(run)
    orchestration.after_run_safely(run, now=now)
    return run.status


def _record_outcome(run, stop_reason, error, warnings, timeout):
    if stop_reason == "cancelled":
        if error:
            run.log(error, level="warning")
        run.finish(Run.Status.CANCELLED, "Cancelled while running", "Cancelled: the run was stopped", "warning")
    elif stop_reason == "timeout":
        if error:
            run.log(error, level="warning")
        run.mark_failed(f"Timed out: the run took longer than its limit of {timeout} seconds and was stopped")
    elif error:
        run.mark_failed(error)
    elif warnings:
        run.finish(Run.Status.WARNING, "; ".join(warnings))
    else:
        run.mark_succeeded("Finished successfully")


def run_pipeline(run, secrets=()):
    """Run every stage for `run`; return the warnings (empty when all went well)."""
    task = run.task
    ctx = RunContext(run=run, task=task, folder=pipeline.run_folder(task.pk, run.pk),
                     params=parameters.resolve(task, run), secrets=list(secrets),
                     log=lambda message, level="info": run.log(scrub(message, secrets), level=level))
    check_stop(run.pk)
    outputs = sources.produce(ctx)
    check_stop(run.pk)
    outputs = processing.apply(ctx, outputs)
    reason = conditions.failed_condition(ctx, outputs)
    if reason:
        ctx.warn(f"Not delivered: {reason}")
        return ctx.warnings
    outputs = packaging.finish(ctx, outputs)
    check_stop(run.pk)
    outputs = delivery.deliver_all(ctx, outputs)
    RunFile.objects.bulk_create([
        RunFile(run=run, name=output.name, shown_name=run.masker(output.name), size=output.size, md5=output.md5,
                stored_path=str(output.path),
                deliveries=[RunFile.shown_record(record, run.masker) for record in output.deliveries])
        for output in outputs
    ])
    sources.after_delivery(ctx)
    return ctx.warnings


# --- recovery ----------------------------------------------------------------------------------------------

def reap_interrupted_runs(now=None):
    """Fail every running run whose lease lapsed (its worker died or lost the database), then retry it under
    the task's policy; and wake workers for queued runs nobody is about to pick up."""
    from runs import orchestration

    reaped = 0
    for run in Run.objects.lease_expired().select_related("task"):
        if run.cancel_requested:
            finished = run.finish(Run.Status.CANCELLED, "Cancelled; the worker stopped before confirming it")
        else:
            finished = run.mark_failed(f"Interrupted: worker {run.worker or '?'} stopped renewing its lease "
                                       f"(it crashed or was killed)")
        if finished:
            reaped += 1
            orchestration.after_run_safely(run, now=now)
    kick_stalled_runs(now=now)
    return reaped


def kick_stalled_runs(now=None, older_than=30):
    """Queued runs that may start but have no django-q2 task waiting (a lost broker message): send some."""
    from django_q.brokers import get_broker

    from runs.orchestration import startable

    now = now or timezone.now()
    stalled = startable(now).filter(created_at__lt=now - datetime.timedelta(seconds=older_than)).count()
    if not stalled:
        return 0
    try:
        waiting = get_broker().queue_size()
    except Exception:  # a broker we cannot ask: sending a few extra tasks is harmless
        waiting = 0
    count = min(stalled, 2 * int(settings.Q_CLUSTER.get("workers", 2))) if not waiting else 0
    submit(count)
    return count
