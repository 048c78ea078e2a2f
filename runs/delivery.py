"""Delivery: every output file to every destination of the task; resending from history; retention.

Each destination has a folder (parameters allowed), overwrite on/off and "don't send empty files". Every
destination is tried even when one fails, so one vendor's server being down does not hold back the
others; the run then fails with every failure named (one destination's error is passed on as it is).
Uploads go to a temporary name, then are renamed.
"""
import datetime
import logging

from django.utils import timezone

from connections.protocols import FILES, ConnectorError
from connections.secrets import scrub
from runs import archive, delivery_proof
from runs.context import OutputFile
from runs.files import checksum
from runs.errors import PipelineError
from runs.masking import secret_values
from runs.models import RunFile
from runs.parameters import render, resolve
from tasks.inheritance import resolve_many
from tasks.models import Task

logger = logging.getLogger(__name__)


def deliver_all(ctx, outputs):
    destinations = ctx.task.destinations_in_effect()
    if not destinations:
        ctx.log("No destinations: the files are kept in the run history only")
        return outputs
    if not outputs:
        ctx.log("Nothing to deliver")
        return outputs
    failures = []
    for destination in destinations:
        folder = render(destination.folder, ctx.params)
        try:
            delivered = deliver_to(destination, outputs, folder, ctx.log, ctx.warn, params=ctx.params,
                                   transfer_key=transfer_key(ctx.run, destination))
            if destination.ack_pattern and delivered:
                ctx.awaited_answers.append((destination, folder, delivered))
        except ConnectorError as exc:
            ctx.log(f"Delivery to {describe(destination)} failed: {exc.message}", level="error")
            failures.append((destination, exc))
    if failures and len(destinations) == 1:
        raise failures[0][1]
    if failures:
        raise ConnectorError("Delivery failed: " + "; ".join(f"{describe(d)}: {exc.message}" for d, exc in failures),
                             retryable=any(exc.retryable for _, exc in failures), step=failures[0][1].step or "upload")
    return outputs


def transfer_key(run, destination):
    """The same for every attempt of one run at one destination: a retry's upload then reuses (and so replaces)
    the temporary file an attempt cut off mid-upload left on the vendor's server."""
    return f"run {run.first_attempt_id or run.pk} destination {destination.pk or 'default'}"


def describe(destination):
    folder = destination.folder.strip("/")
    return f"{destination.connection.name}:/{folder}" if folder else destination.connection.name


def file_store(destination):
    store = destination.connection.connector()
    if FILES not in store.capabilities:
        raise PipelineError(f"{destination.connection.name} is a {destination.connection.kind_label} "
                                     "connection and cannot receive files", step="settings")
    return store


def deliver_to(destination, outputs, folder, log, warn, params=None, transfer_key=None):
    """Put `outputs` in `folder` of one destination over one session, each checked on the server after its
    upload (runs/delivery_proof.py), then the destination's marker file; return (output, record) per file sent."""
    store = file_store(destination)
    wanted = []
    for output in outputs:
        if destination.skip_empty and output.is_empty:
            warn(f"{output.name} is empty: not sent to {destination.connection.name} "
                 "(\"don't send empty files\" is on)")
        else:
            wanted.append(output)
    records = []
    if not wanted:
        return records
    with store.session() as session:
        for output in wanted:
            remote = store.join(folder, output.name)
            if not destination.overwrite and session.exists(remote):
                warn(f"{output.name} was not sent to {destination.connection.name}: {remote} already exists "
                     "and overwriting is off")
                continue
            session.put(str(output.path), remote, overwrite=destination.overwrite, transfer_key=transfer_key)
            proof = delivery_proof.verify(session, remote, output)
            record = {"connection": destination.connection.name, "kind": store.kind, "path": remote, **proof}
            output.deliveries.append(record)
            records.append((output, record))
            checked = f"{proof['verified']} checked" if proof["verified"] else "the server reports no size to check"
            log(f"Delivered {output.name} to {destination.connection.name}:{remote} ({checked})")
        delivery_proof.write_markers(session, store, destination, folder, [output for output, _ in records],
                                     params or {}, log, transfer_key=transfer_key)
    return records


# --- resend -----------------------------------------------------------------------------------------

def resend(run_file, user=None):
    """Deliver a stored file again to the task's CURRENT destinations; every attempt is logged on its run.

    Folders are worked out for the run's own date, so a resent file lands where it would have then.
    Returns one result per destination: {"destination", "ok", "message"}.
    """
    run = run_file.run
    task = run.task
    if not run_file.is_available:
        raise ConnectorError(f"{run_file.display_name} is no longer kept (its retention period passed): it cannot "
                             "be resent", step="settings")
    destinations = task.destinations_in_effect()
    if not destinations:
        raise ConnectorError(f"{task.name} has no destinations to resend {run_file.display_name} to",
                             step="settings")
    secrets = secret_values(task)
    requested = f" (requested by {user.username})" if user is not None else ""
    try:
        kept = archive.local_copy(run_file.stored_path)
    except FileNotFoundError:
        raise ConnectorError(f"{run_file.display_name} is no longer in the archive: it cannot be resent",
                             step="settings") from None
    output = OutputFile(path=kept, name=run_file.name, rows=0 if run_file.size == 0 else None)
    output.size, output.md5, output.sha256 = checksum(output.path)
    params = resolve(task, run)
    results = []

    def log(message, level="info"):
        run.log(scrub(message.replace("Delivered ", "Resent ", 1) + requested, secrets), level=level)

    for destination in destinations:
        skipped = []
        try:
            records = [record for _, record in deliver_to(
                destination, [output], render(destination.folder, params), log,
                lambda reason: skipped.append(reason) or log(reason, level="warning"), params=params)]
        except ConnectorError as exc:
            message = scrub(exc.message, secrets)
            run.log(f"Resend of {run_file.display_name} to {describe(destination)} failed{requested}: {message}",
                    level="error")
            results.append({"destination": describe(destination), "ok": False, "message": message})
            continue
        for record in records:
            record.update(resent_by=user.username if user is not None else "",
                          at=timezone.now().isoformat(timespec="seconds"))
            shown = scrub(record["path"], secrets)
            if shown != record["path"]:  # as RunFile.shown_record: only when a secret was in the path
                record["shown_path"] = shown
        results.append({"destination": describe(destination), "ok": bool(records),
                        "message": scrub(records[0]["path"] if records else "; ".join(skipped), secrets)})
    run_file.deliveries = list(run_file.deliveries or []) + output.deliveries
    run_file.save(update_fields=["deliveries"])
    return results


# --- retention --------------------------------------------------------------------------------------

def purge_expired_files(now=None):
    """Delete stored output files older than their task's retention_days; the RunFile records stay.

    A retention of 0 days keeps files forever. Returns how many files were purged.
    """
    now = now or timezone.now()
    purged = 0
    tasks = resolve_many(list(Task.objects.filter(runs__files__purged_at__isnull=True).distinct()
                              .select_related("project__organization")))
    for task in tasks:
        task.retention_days = task.effective("retention_days")  # the task's own, else its project's, ...
        if not task.retention_days:
            continue
        try:
            cutoff = now - datetime.timedelta(days=task.retention_days)
        except OverflowError:
            # A retention saved before the validators (99999999999999 days): nothing of it can be old enough.
            # Skip that task with a line in the log, and go on purging the others.
            logger.warning("Task %s: retention of %s days is beyond what dates can hold; its files are kept",
                           task.pk, task.retention_days)
            continue
        expired = RunFile.objects.filter(run__task=task, purged_at__isnull=True, created_at__lt=cutoff)
        for run_file in expired:
            try:
                archive.delete(run_file.stored_path)  # never outside the archive or ETL_DATA_DIR
            except ConnectorError as exc:  # the archive connection's server is down: try again on the next pass
                logger.warning("Could not purge file %s from the archive: %s", run_file.pk, exc.message)
                continue
            run_file.purged_at = now
            run_file.save(update_fields=["purged_at"])
            purged += 1
    return purged

