"""Stopping a running run (cancel, or the task's timeout). The run's watcher (runs/leases.py) notices
`Run.cancel_requested` (within about a second) or the deadline and calls `stop`, which sets the run's stop event
and calls every *cancel callback* registered for the run.
Code that blocks (a query, a script, a transfer) registers one while it blocks::

    from etl_portal.cancellation import on_cancel
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

This module knows nothing of runs, tasks or connections (it is plain Python), so every layer may use it: the
connection protocols as much as the run stages. runs/execution.py runs a run inside `scope(run_id)`, which
makes it the current run of the thread and forgets its callbacks and stop when it ends.
"""
import contextlib
import contextvars
import logging
import threading

logger = logging.getLogger(__name__)


# The stop reason of a run whose worker lost its lease (runs/leases.py): it must not deliver or record anything.
LEASE_LOST = "lease lost"


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
    """"cancelled", "timeout", LEASE_LOST or None."""
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


def stop(run_id, reason):
    """Tell the run to stop (once): set its event, call its cancel callbacks."""
    with _lock:
        if run_id in _stops:
            return
        _stops[run_id] = reason
        callbacks = list(_callbacks.get(run_id, []))
        _events.setdefault(run_id, threading.Event()).set()
    for callback in callbacks:
        _call(run_id, callback)


@contextlib.contextmanager
def scope(run_id):
    """Run the block as run `run_id`: `on_cancel` and `check_stop` without a run id mean this one."""
    token = _current_run.set(run_id)
    try:
        yield
    finally:
        _current_run.reset(token)
        with _lock:
            _callbacks.pop(run_id, None)
            _stops.pop(run_id, None)
            _events.pop(run_id, None)
