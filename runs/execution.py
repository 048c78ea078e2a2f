"""Queueing and executing runs: the one workflow that touches tasks, runs, files and connections.

Views, admin actions, commands and django-q2 all call `enqueue_run` / `execute_run`. A run is claimed with
a conditional update and kept under a lease that a heartbeat renews, so two workers never run one run and
a run whose worker died is found by `reap_interrupted_runs`.
"""
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection as db_connection, transaction
from django.utils import timezone

from connections.protocols import ConnectorError
from connections.secrets import scrub
from runs import conditions, delivery, notifications, packaging, parameters, pipeline, processing, sources
from runs.context import RunContext
from runs.models import Run, RunFile

logger = logging.getLogger(__name__)


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def enqueue_run(task, trigger=Run.Trigger.MANUAL, user=None, scheduled_for=None):
    """Create a queued run and hand it to django-q2 once the transaction commits."""
    from django_q.tasks import async_task

    run = Run.objects.create(task=task, trigger=trigger, requested_by=user,
                             scheduled_for=scheduled_for or timezone.now())
    run.log(f"Queued ({run.get_trigger_display().lower()}{' by ' + user.username if user else ''})")
    transaction.on_commit(
        lambda: async_task("runs.execution.execute_run", run.pk, task_name=f"run-{run.pk}", group=f"task-{task.pk}")
    )
    return run


class LeaseKeeper:
    """Renews the run's lease from a background thread while the run executes."""

    def __init__(self, run_id, worker):
        self.run_id, self.worker = run_id, worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{run_id}", daemon=True)
        self.lost = False

    def _renew(self):
        interval = max(1.0, settings.ETL_RUN_LEASE_SECONDS / 3)
        try:
            while not self._stop.wait(interval):
                if not Run.objects.renew_lease(self.run_id, self.worker):
                    self.lost = True
                    return
        except Exception:  # a renewal failure must not kill the run; the lease simply lapses
            logger.exception("Could not renew the lease of run %s", self.run_id)
        finally:
            db_connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def secrets_of(task):
    """Every secret value a run of `task` could meet, so messages can be scrubbed of them."""
    from runs.parameters import sensitive_values

    values = []
    connections = [task.source_connection, task.text_connection, task.processing_connection] + [
        destination.connection for destination in task.destinations.all()]
    for connection in connections:
        if connection is not None:
            values.extend(connection.secret_values())
    return values + sensitive_values(task)


def execute_run(run_id, worker=None):
    """Claim and execute one run. Never raises: every failure ends as a failed run with its reason."""
    close_old_connections()
    worker = worker or worker_id()
    if not Run.objects.claim(run_id, worker):
        logger.info("Run %s was not queued any more; another worker has it or it was cancelled", run_id)
        return "not claimed"
    run = Run.objects.select_related("task__project", "task__source_connection").get(pk=run_id)
    run.log(f"Started on {worker.rsplit(':', 1)[0]} (attempt {run.attempt})")
    secrets = []
    with LeaseKeeper(run_id, worker):
        try:
            secrets = secrets_of(run.task)
            warnings = run_pipeline(run, secrets)
        except ConnectorError as exc:
            run.mark_failed(scrub(exc.message, secrets))
        except Exception as exc:
            logger.error("Run %s failed unexpectedly: %s", run_id, type(exc).__name__)
            run.mark_failed(scrub(f"Unexpected error: {type(exc).__name__}: {exc}", secrets))
        else:
            if warnings:
                run._finish(Run.Status.WARNING, "; ".join(warnings))
            elif run.mark_succeeded():
                run.log("Finished successfully")
    notifications.notify(run)
    return run.status


def run_pipeline(run, secrets=()):
    """Run every stage for `run`; return the warnings (empty when all went well)."""
    task = run.task
    ctx = RunContext(run=run, task=task, folder=pipeline.run_folder(task.pk, run.pk),
                     params=parameters.resolve(task, run), secrets=list(secrets),
                     log=lambda message, level="info": run.log(scrub(message, secrets), level=level))
    outputs = sources.produce(ctx)
    outputs = processing.apply(ctx, outputs)
    reason = conditions.failed_condition(ctx, outputs)
    if reason:
        ctx.warn(f"Not delivered: {reason}")
        return ctx.warnings
    outputs = packaging.finish(ctx, outputs)
    outputs = delivery.deliver_all(ctx, outputs)
    RunFile.objects.bulk_create([
        RunFile(run=run, name=output.name, size=output.size, md5=output.md5, stored_path=str(output.path),
                deliveries=output.deliveries)
        for output in outputs
    ])
    return ctx.warnings


def reap_interrupted_runs():
    """Fail every running run whose lease lapsed: its worker died or lost the database."""
    reaped = 0
    for run in Run.objects.lease_expired().select_related("task"):
        if run.mark_failed(f"Interrupted: worker {run.worker or '?'} stopped renewing its lease "
                           f"(it crashed or was killed)"):
            reaped += 1
    return reaped
