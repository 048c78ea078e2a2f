"""Writes that survive a restart of the app database.

A worker holds one Django connection per thread for the life of a run; when the database restarts (or a proxy
resets the connection) the next statement raises. `durable(write)` closes the broken connection and tries the
write again with back-off, for at most `ETL_DB_RETRY_SECONDS` (kept well under the run's lease, so a worker
that gets its database back in time is never taken for dead). Inside a transaction nothing is retried: the
transaction is lost with its connection, and only its owner may start it again.

Plain Django, no run logic: runs/models.py (log lines, status moves, what a run records), runs/leases.py (lease
renewal) and runs/pipeline.py (between stages, `ensure_connected`) use it.
"""
import logging
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import InterfaceError, OperationalError

logger = logging.getLogger(__name__)
FIRST_WAIT, LONGEST_WAIT = 0.2, 2.0


def retry_seconds():
    configured = getattr(settings, "ETL_DB_RETRY_SECONDS", None)
    lease = settings.ETL_RUN_LEASE_SECONDS
    return configured if configured is not None else max(1.0, lease / 2)


def reconnect(alias=DEFAULT_DB_ALIAS):
    """Drop this thread's connection (broken or not); the next query opens a new one."""
    try:
        connections[alias].close()
    except Exception:  # closing a dead connection may itself fail: it is gone either way
        connections[alias].connection = None


def durable(write, seconds=None, alias=DEFAULT_DB_ALIAS):
    """`write()`, retried with a fresh connection while the database is unreachable, for a bounded time."""
    if connections[alias].in_atomic_block:
        return write()
    deadline = time.monotonic() + (retry_seconds() if seconds is None else seconds)
    wait = FIRST_WAIT
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + wait > deadline:
                raise
            logger.warning("Database unreachable (%s); reconnecting in %.1f s", type(exc).__name__, wait)
            reconnect(alias)
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)


def ensure_connected(alias=DEFAULT_DB_ALIAS):
    """Make sure this thread's connection answers (one `SELECT 1`), reconnecting with back-off when it was lost:
    called before a run reads the app database again after long work elsewhere."""
    def check():
        connection = connections[alias]
        connection.ensure_connection()
        if not connection.is_usable():
            raise InterfaceError("the connection to the app database was lost")

    durable(check, alias=alias)
