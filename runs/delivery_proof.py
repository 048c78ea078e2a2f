"""Proof of delivery: what landed is read back, the receiver is told when all has landed, and its answer is awaited.

- After each upload the file's size on the server is read back and must be what was sent; where the server
  can hash a file itself (FTP's HASH / XSHA256 / XMD5, a local folder) its checksum must match too. A file
  that does not match is removed from the server and the delivery fails (retryable): a wrong file under its
  final name is worse than none.
- A marker file (empty) after all files have landed at a destination: `<file>.done` beside each file, or one
  named file (parameters allowed), for receivers that pick up files only once told.
- An acknowledgement: the receiver answers each file with a file of its own (`{name}.ack`, or a refusal
  `{name}.nack`). The run waits for the answers (checking every ETL_ACK_POLL_SECONDS, cancellable), and a
  refusal or no answer in time makes it a warning or a failure, as the destination says. The files are
  recorded either way: they did reach the receiver.

Each delivery record (RunFile.deliveries) keeps the proof: remote size, what was checked, when, and the answer.
"""
import contextlib
import datetime

from django.conf import settings
from django.utils import timezone

from connections.protocols import ConnectorError
from etl_portal.cancellation import check_stop, stop_event
from runs.parameters import render
from tasks.models import Destination

ANSWER_PREVIEW_BYTES = 2048


def verify(session, remote, output):
    """Check `remote` against the file sent; return the proof for its delivery record."""
    size = session.size_of(remote)
    if size is not None and size != output.size:
        _remove(session, remote)
        raise ConnectorError(f"{remote} holds {size:,} bytes on the server after the upload, but {output.size:,} "
                             "were sent: the file was removed again and the delivery failed", retryable=True,
                             step="verify")
    checked = ["size"] if size is not None else []
    digest = session.digest_of(remote)
    if digest is not None:
        algorithm, value = digest
        expected = {"sha256": output.sha256, "md5": output.md5}.get(algorithm)
        if expected:
            if value.lower() != expected.lower():
                _remove(session, remote)
                raise ConnectorError(f"{remote}: the server's {algorithm} checksum differs from the file sent: the "
                                     "file was removed again and the delivery failed", retryable=True, step="verify")
            checked.append(algorithm)
    return {"remote_size": size, "verified": " and ".join(checked),
            "at": timezone.now().isoformat(timespec="seconds")}


def _remove(session, remote):
    with contextlib.suppress(ConnectorError):
        session.delete(remote)


def write_markers(session, store, destination, folder, delivered, params, log, transfer_key=None):
    """After all files have landed: the destination's marker file(s), empty, uploaded safely (temporary name
    first, so a receiver never sees a marker before it is complete)."""
    if not destination.marker or not delivered:
        return
    if destination.marker == Destination.Marker.PER_FILE:
        names = [f"{output.name}.done" for output in delivered if not output.sidecar]
    else:
        names = [render(destination.marker_name, params)]
    empty = delivered[0].path.with_name(".marker")
    empty.write_bytes(b"")
    for name in names:
        remote = store.join(folder, name)
        session.put(str(empty), remote, overwrite=True, transfer_key=transfer_key)
        log(f"Marker {name} written to {destination.connection.name}:{remote}")


def answer_names(destination, output):
    ack = destination.ack_pattern.replace("{name}", output.name)
    nack = destination.nack_pattern.replace("{name}", output.name) if destination.nack_pattern else ""
    return ack, nack


def await_answers(ctx, waits):
    """Wait for each destination's acknowledgement files; return why the run must fail ("" when it need not).

    `waits` holds (destination, folder, [(output, record)]) for every destination expecting answers. A refusal
    or a missing answer is a warning or a failure as the destination says; the answer goes into each file's
    delivery record.
    """
    failures = []
    for destination, folder, delivered in waits:
        problems = _await_destination(ctx, destination, folder, delivered)
        if not problems:
            continue
        message = f"{destination.connection.name}: " + "; ".join(problems)
        if destination.ack_failure == Destination.AckFailure.FAILURE:
            ctx.log(message, level="error")
            failures.append(message)
        else:
            ctx.warn(message)
    return "; ".join(failures)


def _await_destination(ctx, destination, folder, delivered):
    store = destination.connection.connector()
    pending = list(delivered)
    deadline = timezone.now() + datetime.timedelta(minutes=destination.ack_wait_minutes)
    problems = []
    ctx.log(f"Waiting up to {destination.ack_wait_minutes} minutes for {destination.connection.name} to answer "
            f"{len(pending)} file(s) ({destination.ack_pattern})")
    while True:
        with store.session() as session:
            still = []
            for output, record in pending:
                ack, nack = answer_names(destination, output)
                if nack and session.exists(store.join(folder, nack)):
                    said = _read_answer(session, store.join(folder, nack), ctx.folder / f".answer-{len(still)}")
                    record["answer"] = "refused"
                    problems.append(f"{output.name} was refused ({nack}{': ' + said if said else ''})")
                elif session.exists(store.join(folder, ack)):
                    record["answer"] = "acknowledged"
                    ctx.log(f"{output.name} acknowledged by {destination.connection.name} ({ack})")
                else:
                    still.append((output, record))
            pending = still
        if not pending or timezone.now() >= deadline:
            break
        remaining = (deadline - timezone.now()).total_seconds()
        stop_event().wait(min(settings.ETL_ACK_POLL_SECONDS, max(remaining, 0)))
        check_stop()
    for output, record in pending:
        record["answer"] = "no answer"
        problems.append(f"no answer for {output.name} within {destination.ack_wait_minutes} minutes "
                        f"({answer_names(destination, output)[0]} did not appear)")
    return problems


def _read_answer(session, remote, local):
    """The first lines of a refusal file, for the run log: the receiver's reason is the most useful thing in it."""
    try:
        session.get(remote, str(local))
        text = local.read_bytes()[:ANSWER_PREVIEW_BYTES].decode("utf-8", "replace")
    except (ConnectorError, OSError):
        return ""
    finally:
        with contextlib.suppress(OSError):
            local.unlink()
    return " ".join(text.split())[:300]
