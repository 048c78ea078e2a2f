"""The process side of running a script: its clean environment, its output streamed into the run log,
its timeout (the whole process group is killed; for a script, that group is its sandbox's bwrap, whose PID
namespace takes every process the script started with it, see runs/sandbox.py), and a file lock for
building shared environments."""
import contextlib
import fcntl
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from etl_portal.cancellation import on_cancel, stop_requested
from runs import parameters

LOG_LINE_LIMIT = 5000  # lines of one script's output written to the run log; the rest are only counted
LINE_CHARACTERS = 4000
STDERR_TAIL = 40
KILL_GRACE_SECONDS = 3
# The run's own watcher (runs/leases.py) stops a script at the task's timeout or on cancel; this step's own
# deadline is a backstop a little later, for scripts run outside a watched run.
BACKSTOP_SECONDS = 5


@contextlib.contextmanager
def file_lock(path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _variable_name(key):
    return re.sub(r"[^A-Z0-9]", "_", str(key).upper())


def connection_details(connection):
    if connection is None:
        return None
    return {"kind": connection.kind, "name": connection.name, "host": connection.host or "",
            "port": connection.port or "", "user": connection.username or "", "database": connection.database or "",
            "path": connection.path or "", "options": connection.options or {},
            "secrets": dict(connection.secrets or {})}


def script_environment(ctx, step, inputs, environment, home):
    """Every variable the script sees; nothing is inherited from the portal's own environment."""
    task, run = ctx.task, ctx.run
    project = task.project
    output_name = parameters.render(task.file_name, ctx.params) if task.file_name else ""
    environ = {
        "PATH": f"{environment}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": getattr(project, "time_zone", "") or settings.TIME_ZONE,
        "VIRTUAL_ENV": str(environment),
        "ETL_STEP": step,
        "ETL_TASK_ID": str(task.pk), "ETL_TASK_NAME": task.name,
        "ETL_PROJECT_ID": str(project.pk), "ETL_PROJECT_NAME": project.name,
        "ETL_RUN_ID": str(run.pk or ""), "ETL_RUN_ATTEMPT": str(run.attempt),
        "ETL_DRY_RUN": "1" if ctx.dry_run else "",
        "ETL_RUN_TRIGGER": str(run.trigger),
        "ETL_RUN_SCHEDULED_FOR": run.scheduled_for.isoformat() if run.scheduled_for else "",
        "ETL_RUN_FOLDER": str(ctx.folder),
        "ETL_INPUT_FILES": json.dumps([str(path) for path in inputs]),
        "ETL_OUTPUT_NAME": output_name,
        "ETL_PARAMS": json.dumps({str(key): parameters.value_text(value) for key, value in ctx.params.items()}),
    }
    for key, value in ctx.params.items():
        environ[f"ETL_PARAM_{_variable_name(key)}"] = parameters.value_text(value)
    source = connection_details(task.source_connection)
    if source is not None:
        for name in ("kind", "name", "host", "port", "user", "database", "path"):
            environ[f"ETL_SOURCE_{name.upper()}"] = str(source[name])
        environ["ETL_SOURCE_OPTIONS"] = json.dumps(source["options"])
        for name, value in source["secrets"].items():
            environ[f"ETL_SOURCE_{_variable_name(name)}"] = str(value)
    destinations = [dict(connection_details(destination.connection), folder=destination.folder,
                         overwrite=destination.overwrite)
                    for destination in task.destinations_in_effect()]
    environ["ETL_CONNECTIONS"] = json.dumps({"source": source, "destinations": destinations})
    return {key: value.replace("\x00", "") for key, value in environ.items()}


TRACEBACK_FRAME = re.compile(r'\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def error_summary(stderr_lines, script_folder):
    """What went wrong, from the last stderr lines: a traceback's exception and the script line it came
    from, else the last three lines."""
    lines = [line for line in stderr_lines if line.strip() and not set(line.strip()) <= set("^~ ")]
    if not lines:
        return ""
    traceback = next((index for index in range(len(lines) - 1, -1, -1)
                      if lines[index].startswith("Traceback (most recent call last)")), None)
    if traceback is None:
        return " | ".join(lines[-3:])
    where = None
    for line in lines[traceback:]:
        frame = TRACEBACK_FRAME.match(line)
        if frame and os.path.realpath(frame["file"]).startswith(os.path.realpath(script_folder) + os.sep):
            where = f"{os.path.relpath(frame['file'], script_folder)} line {frame['line']}"
    return lines[-1] + (f" (at {where})" if where else "")


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def describe_exit(returncode):
    if returncode < 0:
        return f"killed by signal {_signal_name(-returncode)}"
    # The sandbox (bwrap) passes a script killed by a signal on as 128 + the signal's number.
    if 128 < returncode <= 128 + 64:
        return f"exit status {returncode}, as when killed by signal {_signal_name(returncode - 128)}"
    return f"exit status {returncode}"


@dataclass
class Outcome:
    returncode: int | None = None
    timed_out: bool = False
    stopped: str | None = None  # "cancelled" or "timeout" when the run's watcher stopped it
    last_line: str = ""
    stderr_tail: list = field(default_factory=list)
    seconds: float = 0.0


def _pump(stream, name, lines):
    """Reader thread: one pipe's lines onto the queue; the database is only touched from the caller."""
    try:
        for raw in iter(stream.readline, b""):
            lines.put((name, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    finally:
        stream.close()
        lines.put((name, None))


def kill_group(process):
    """Stop the script and every process it started (they share its new session's process group; a
    sandboxed script's processes, even those in sessions of their own, die with bwrap's PID namespace)."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, KILL_GRACE_SECONDS)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_streamed(command, *, cwd, env, timeout, log, label):
    """Run `command`, logging each output line as it comes; return an Outcome (never raises on failure)."""
    started = time.monotonic()
    deadline = started + timeout
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    with on_cancel(lambda: _kill_now(process)):
        outcome = _follow(process, deadline, log, label)
    outcome.stopped = stop_requested()
    outcome.seconds = time.monotonic() - started
    return outcome


def _kill_now(process):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _follow(process, deadline, log, label):
    lines = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
               for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    outcome, logged, skipped, open_streams = Outcome(), 0, 0, 2
    while open_streams:
        now = time.monotonic()
        if now >= deadline:
            outcome.timed_out = True
            break
        try:
            name, line = lines.get(timeout=min(0.5, max(0.01, deadline - now)))
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        if name == "stdout" and line.strip():
            outcome.last_line = line
        if name == "stderr" and line.strip():
            outcome.stderr_tail = (outcome.stderr_tail + [line.strip()[:500]])[-STDERR_TAIL:]
        if logged < LOG_LINE_LIMIT:
            text = line if len(line) <= LINE_CHARACTERS else line[:LINE_CHARACTERS] + " …"
            log(f"[{label}{' stderr' if name == 'stderr' else ''}] {text}",
                level="warning" if name == "stderr" else "info")
            logged += 1
        else:
            skipped += 1
    if outcome.timed_out:
        kill_group(process)
    else:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
            kill_group(process)
    # Whatever the script left running in the background ends with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for reader in readers:
        reader.join(timeout=2)
    if skipped:
        log(f"[{label}] {skipped:,} more output lines were not written to the log")
    outcome.returncode = process.returncode
    return outcome
