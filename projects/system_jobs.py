"""The portal's own housekeeping, scheduled by operators with the same triggers as projects.

A SystemJob names one function from REGISTRY (never a dotted path typed by a user) and passes it its JSON args
and kwargs. `run_system_job` enforces the job's max instances and records the outcome on the job.
"""
import datetime
import logging
from dataclasses import dataclass
from typing import Callable

from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)


def purge_expired_files(**kwargs):
    from runs import delivery

    purge = getattr(delivery, "purge_expired_files", None)
    if purge is None:
        return "Purging is not available in this version"
    return f"{purge(**kwargs)} expired file(s) purged"


def clean_orphan_schedules():
    from projects.scheduling import cleanup_orphan_schedules

    return cleanup_orphan_schedules()


def test_connections(kinds=None):
    """Test every connection (or those of `kinds`); report failures by email to ADMINS and in the result."""
    from connections.models import Connection
    from connections.services import test_connection

    connections = Connection.objects.all().order_by("name")
    if kinds:
        connections = connections.filter(kind__in=kinds)
    failures, tested = [], 0
    for connection in connections:
        tested += 1
        ok, message = test_connection(connection)
        if not ok:
            failures.append(f"{connection.name} ({connection.kind}): {message}")
    if failures:
        text = "\n".join(failures)
        logger.warning("Nightly connection test: %s of %s failed:\n%s", len(failures), tested, text)
        mail_admins(f"{len(failures)} of {tested} connections failed their test", text, fail_silently=True)
        return f"{len(failures)} of {tested} connection(s) failed:\n{text}"
    return f"All {tested} connection(s) passed"


def prune_run_logs(days=180):
    """Delete the log lines of runs that ended more than `days` days ago; the runs themselves stay."""
    from runs.models import RunLog

    cutoff = timezone.now() - datetime.timedelta(days=int(days))
    deleted, _ = RunLog.objects.filter(run__finished_at__lt=cutoff).delete()
    return f"{deleted} log line(s) of runs older than {days} days deleted"


def prune_script_environments(days=30):
    """Delete the Python script environments no run has used for `days` days."""
    from runs.scripts import prune_environments

    removed, freed = prune_environments(days=days)
    return f"{removed} script environment(s) unused for {days} days removed, {freed / 1e6:,.1f} MB freed"


def remind_expiring_credentials():
    """Email organization admins about passwords, keys and certificates expiring in 30, 7 or 1 day(s)."""
    from connections.expiry import send_reminders

    return send_reminders()


@dataclass(frozen=True)
class SystemFunction:
    label: str
    function: Callable
    help: str = ""


REGISTRY = {
    "purge_expired_files": SystemFunction("Purge output files past their retention", purge_expired_files,
                                          "Deletes stored copies older than each task's retention; records stay."),
    "clean_orphan_schedules": SystemFunction("Clean orphan schedules", clean_orphan_schedules,
                                             "Removes schedules whose trigger, project, task or retry is gone."),
    "test_connections": SystemFunction("Test every connection and report failures", test_connections,
                                       'kwargs: {"kinds": ["sftp", ...]} to test only some kinds.'),
    "prune_run_logs": SystemFunction("Prune old run logs", prune_run_logs, 'kwargs: {"days": 180}'),
    "remind_expiring_credentials": SystemFunction(
        "Remind of expiring credentials", remind_expiring_credentials,
        "Emails each organization's admins 30, 7 and 1 day(s) before a password, key or certificate expires."),
    "prune_script_environments": SystemFunction(
        "Remove unused script environments", prune_script_environments,
        'kwargs: {"days": 30}. A run that needs a removed environment builds it again.'),
}


def choices():
    return [(name, entry.label) for name, entry in REGISTRY.items()]


def run_system_job(job_id, scheduled_for=None):
    """Run one job now unless it is inactive or already at its max instances. Returns its result text."""
    from projects.models import SystemJob

    job = SystemJob.objects.filter(pk=job_id).first()
    if job is None:
        return "job gone"
    entry = REGISTRY.get(job.function)
    if entry is None:
        SystemJob.objects.filter(pk=job.pk).update(last_result=f"Not run: {job.function!r} is not a known function")
        return "unknown function"
    now = timezone.now()
    # A worker killed mid-job never decrements the count: after the longest run time it no longer counts.
    SystemJob.objects.filter(pk=job.pk, last_started_at__lt=now - datetime.timedelta(
        seconds=settings.ETL_RUN_TIMEOUT)).update(running_count=0)
    if not SystemJob.objects.filter(pk=job.pk, running_count__lt=max(1, job.max_instances)).update(
            running_count=F("running_count") + 1, last_started_at=now):
        message = f"Skipped at {now:%Y-%m-%d %H:%M:%S} UTC: still running (at most {job.max_instances} at once)"
        logger.info("System job %s: %s", job.name, message)
        SystemJob.objects.filter(pk=job.pk).update(last_result=message)
        return message
    try:
        result = str(entry.function(*(job.args or []), **(job.kwargs or {})))
    except Exception as exc:  # a job's failure is recorded on the job; the worker stays up
        logger.exception("System job %s failed", job.name)
        result = f"Failed: {type(exc).__name__}: {exc}"
    SystemJob.objects.filter(pk=job.pk).update(running_count=F("running_count") - 1,
                                               last_finished_at=timezone.now(), last_result=result[:5000])
    return result
