"""Dry run: everything a run of a task for a date would do, except sending anything out.

The source is read as a run reads it, but through read-only sessions (`Database.read_only`: a query that would
write fails instead); an SSH command is shown, not run. The processing script runs in its sandbox on a scratch
folder (it sees `ETL_DRY_RUN=1`), the conditions and the drift check are evaluated, the files are packaged
(encrypted, zipped) to learn their final names and sizes. Then, instead of delivering: each destination with
the final remote path of each file, the marker and acknowledgement it would expect; each email with its
recipients after test mode; the GPG key's fingerprint and expiry. Nothing leaves the portal, no Run is
recorded, no file is kept: the report (a JSON-ready dict, secrets masked) is all that remains, in a `DryRun`.

Maintenance windows (runs/windows.py): the report's `maintenance` says, for each connection the run would use
(runs/pools.py: source, text, processing, destinations, conditions) that is in a window, "A run now would wait
for the maintenance window of <connection> until <end>", and lists the windows beginning within the next 24 h on
those connections. The moment that counts is the dry run's own, when the worker (or the command) makes it: the
moment a run started now would be claimed. A run "as of" a date is such a run standing for that date (a
backfill starts now), so the date changes nothing here; a scheduled start within the day shows among the coming
windows. A window exists because the system must not be touched, so the dry run does not connect to a connection
in one either: it stops before the first stage that would (the source or the query's text connection: no rows
are read; the processing script's connection; a condition query's), says which connection and why, and still
shows the emails and the GPG key. A destination is never connected to in a dry run, so a destination in a window
changes nothing but the wait line. The texts are in the project's zone; the page shows the times in the viewer's.

The work is done by a django-q2 worker (`execute`), as a run would be: a page asks (`request`) and shows the
report when it is ready; `run_task --dry-run` works it out in the command's own process (`build`).
"""
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections.protocols import ConnectorError, KEY
from etl_portal.masking import Masker
from runs import conditions, drift, packaging, parameters, processing, sources, windows
from runs.context import RunContext
from runs.delivery_proof import answer_names
from runs.masking import secret_values
from runs.models import DryRun, Run
from runs.notifications import addresses, is_phone_gateway, shared_mailbox, test_address
from tasks.models import Condition, Destination, Task

EXECUTE = "runs.dry_run.execute"
FIRST_ROWS = 10
FIRST_ROW_CHARACTERS = 2000
QUERY_CONDITIONS = (Condition.Kind.QUERY_HAS_ROWS, Condition.Kind.QUERY_VALUE)  # those that connect to a database
NOT_TOUCHED = "a dry run does not connect to a connection in maintenance"
MOMENT_FORMAT = "%Y-%m-%d %H:%M %Z"


def request(task, user, when=None):
    """Ask a worker for a dry run of `task` as a run at `when` (a date or moment; default now); returns it."""
    from django_q.tasks import async_task

    moment = parameters.run_moment(task, None, when)
    dry_run = DryRun.objects.create(task=task, requested_by=user, scheduled_for=moment)
    transaction.on_commit(lambda: async_task(EXECUTE, dry_run.pk, group="dry-runs", save=False))
    return dry_run


def execute(dry_run_id):
    """The worker's part: claim the dry run and record its report (or why it could not be made)."""
    dry_run = DryRun.objects.select_related("task__project").filter(pk=dry_run_id).first()
    if dry_run is None or not dry_run.claim():
        return
    try:
        report = build(dry_run.task, dry_run.scheduled_for)
    except Exception as exc:  # never a dry run left "running": the reason goes on the page
        dry_run.finish(error=Masker(secret_values(dry_run.task))(f"{type(exc).__name__}: {exc}"))
        raise
    dry_run.finish(report=report)


def build(task, scheduled_for, at=None):
    """The dry run's report for `task` as a run at `scheduled_for`, made at `at` (default now: the moment whose
    maintenance windows count, see the module's docstring)."""
    task = task.with_effective_settings()  # its shared settings as its levels set them (tasks/inheritance.py)
    run = Run(task=task, trigger=Run.Trigger.MANUAL, scheduled_for=scheduled_for, attempt=1)
    secrets = secret_values(task)
    masker = Masker(secrets)
    lines = []

    def log(message, level="info"):
        lines.append([level, masker(message)])

    at = at or timezone.now()
    zone = parameters.project_zone(task)
    closed = windows.in_maintenance(task.pk, at)
    folder = Path(settings.ETL_DATA_DIR) / "dry-runs" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    report = {"task": task.name, "scheduled_for": parameters.run_moment(task, run).isoformat(),
              "time_zone": str(zone), "sent": "nothing: this is a dry run",
              "maintenance": maintenance(closed, windows.coming(task.pk, at), at, zone)}
    try:
        ctx = RunContext(run=run, task=task, folder=folder, params=parameters.resolve(task, run),
                         secrets=list(secrets), log=log, dry_run=True)
        report["parameters"] = [{"name": key, "value": masker(parameters.value_text(value))}
                                for key, value in ctx.params.items()]
        _work(ctx, report, masker, {connection.pk: connection for connection, _ in closed})
    except ConnectorError as exc:
        report["outcome"] = f"A run would fail: {masker(exc.message)}"
        report["error"] = masker(exc.message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if closed and not report.get("error"):
        report["outcome"] += "; a run now would wait for a maintenance window"
    report["warnings"] = [masker(warning) for warning in report.pop("_warnings", [])]
    report["log"] = lines
    report["emails"] = emails(task)
    report["gpg"] = gpg_key(task)
    return report


def _work(ctx, report, masker, closed):
    """The stages as a run goes through them; `closed` ({id: connection} in a maintenance window) stops the dry
    run before the first stage that would connect to one of them."""
    task, run = ctx.task, ctx.run
    if task.source.not_in_dry_run:
        report["source"] = f"Not run: {task.source.not_in_dry_run}"
        report["outcome"] = "Shown only: the source is not run in a dry run"
        return
    text_connection = task.text_connection_id if task.text_location == Task.TextLocation.REMOTE else None
    held = _held(closed, [task.source_connection_id, text_connection])
    if held:
        report["source"] = f"Not read: {held} in a maintenance window and {NOT_TOUCHED}; no rows were read"
        report["outcome"] = f"Stopped before the source: {held} in a maintenance window"
        return
    outputs = sources.produce(ctx)
    report.update(query=run.query_text or "", rows=run.rows, columns=run.columns or [])
    report["_warnings"] = ctx.warnings
    remote_script = task.processing_location == Task.TextLocation.REMOTE
    held = _held(closed, [task.processing_connection_id]) if remote_script and outputs else ""
    if held:
        report["processing"] = f"Not run: {held} in a maintenance window and {NOT_TOUCHED}"
        report["outcome"] = f"Stopped before the processing script: {held} in a maintenance window"
        return
    outputs = processing.apply(ctx, outputs)
    report["first_rows"] = first_rows(outputs[0], masker) if outputs else ""
    held = _held(closed, [condition.connection_id for condition in task.conditions.all()
                          if condition.kind in QUERY_CONDITIONS])
    if held:
        report["conditions"] = f"Not checked: {held} in a maintenance window and {NOT_TOUCHED}"
        report["outcome"] = f"Stopped before the conditions: {held} in a maintenance window"
        return
    reason = conditions.failed_condition(ctx, outputs)
    report["conditions"] = reason or ("All conditions hold" if task.conditions.exists() else "None")
    found = drift.find(run) if task.drift_check != Task.DriftCheck.OFF else {}
    report["drift"] = drift.describe(found) if found else ""
    if reason:
        report["outcome"] = f"Nothing would be delivered: {reason}"
        return
    if found and task.drift_check == Task.DriftCheck.STOP:
        report["outcome"] = "Nothing would be delivered: the output drifted and the task stops on drift"
        return
    outputs = packaging.finish(ctx, outputs)
    report["outputs"] = [{"name": masker(output.name), "size": output.size, "md5": output.md5,
                          "sha256": output.sha256} for output in outputs]
    report["destinations"] = destinations(task, outputs, ctx.params, masker)
    report["outcome"] = ("Would deliver" if outputs else "Nothing to deliver") + (
        " (with warnings)" if ctx.warnings else "")


def _held(closed, connection_ids):
    """`Orders DB is` / `Orders DB, Vendor are`: those of the connections that are in a maintenance window."""
    names = sorted({closed[pk].name for pk in connection_ids if pk in closed})
    if not names:
        return ""
    return ", ".join(names) + (" is" if len(names) == 1 else " are")


def maintenance(closed, coming, at, zone):
    """The report's `maintenance`: what a run claimed at `at` would wait for, and the windows of the coming day
    (from runs/windows.py), each with its line in the project's zone; the page shows the times in the viewer's."""
    def moment(value):
        return value.astimezone(zone).strftime(MOMENT_FORMAT)

    return {
        "at": at.isoformat(),
        "waits": [{"connection": connection.name, "until": end.isoformat(),
                   "text": f"A run now would wait for the maintenance window of {connection.name} until {moment(end)}"}
                  for connection, end in closed],
        "coming": [{"connection": connection.name, "from": start.isoformat(), "to": end.isoformat(),
                    "text": f"{connection.name} has a maintenance window from {moment(start)} to {moment(end)}"}
                   for connection, start, end in coming],
    }


def first_rows(output, masker):
    """The first lines of a text output, as they would be delivered; binary formats say so."""
    try:
        with open(output.path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return ""
    if b"\x00" in head or output.path.suffix.lower() in (".parquet", ".xlsx", ".gpg", ".zip"):
        return f"({output.name} is a binary file: open the delivered file to see its rows)"
    text = head.decode("utf-8", "replace").splitlines()[:FIRST_ROWS + 1]
    return masker("\n".join(line[:FIRST_ROW_CHARACTERS] for line in text))


def destinations(task, outputs, params, masker):
    """Where each file would land, and what each destination would add or wait for."""
    shown = []
    for destination in task.destinations_in_effect():
        store = destination.connection.connector()
        folder = parameters.render(destination.folder, params)
        files = []
        for output in outputs:
            if destination.skip_empty and output.is_empty:
                files.append({"name": masker(output.name), "path": "", "note": "empty: not sent"})
            else:
                files.append({"name": masker(output.name), "path": masker(store.join(folder, output.name)),
                              "note": "" if destination.overwrite else "not sent if the file is already there"})
        extras = []
        if destination.marker == Destination.Marker.PER_FILE:
            extras.append("then a .done marker beside each file")
        elif destination.marker == Destination.Marker.NAMED:
            extras.append(f"then the marker {masker(parameters.render(destination.marker_name, params))}")
        if destination.ack_pattern and outputs:
            ack, nack = answer_names(destination, outputs[0])
            extras.append(f"then waits up to {destination.ack_wait_minutes} minutes for {masker(ack)}"
                          + (f" (or {masker(nack)})" if nack else ""))
        shown.append({"connection": destination.connection.name, "kind": destination.connection.kind_label,
                      "files": files, "then": extras})
    return shown


def emails(task):
    """Each email the run would send, with its recipients after test mode."""
    test_mode, test_to = test_address(task)
    shown = []
    mailboxes = [mailbox for event in ("success", "warning", "error") for mailbox in shared_mailbox(task, event)]
    for notification in list(task.notifications.select_related("smtp_connection")) + mailboxes:
        to = addresses(notification.recipients)
        cc, bcc = addresses(notification.cc), addresses(notification.bcc)
        entry = {"event": notification.get_event_display(),
                 "through": notification.smtp_connection.name if notification.smtp_connection else "",
                 "to": to, "cc": cc, "bcc": bcc, "text_messages": [a for a in to + cc + bcc if is_phone_gateway(a)]}
        if test_mode:
            entry.update(to=[test_to] if test_to else [], cc=[], bcc=[], instead_of=to,
                         note=f"test mode: every email goes to {test_to or '(no test address set!)'}")
        shown.append(entry)
    return shown


def gpg_key(task):
    """The key files are encrypted to: fingerprint, user and expiry (or why it cannot be used)."""
    if task.gpg_key_id is None:
        return None
    connector = task.gpg_key.connector()
    if KEY not in connector.capabilities:
        return {"connection": task.gpg_key.name, "error": "not a GPG key connection"}
    try:
        info = connector.key_info()
    except ConnectorError as exc:
        return {"connection": task.gpg_key.name, "error": exc.message}
    return {"connection": task.gpg_key.name, "fingerprint": info.fingerprint, "uid": info.uid,
            "expires": info.expires_text}
