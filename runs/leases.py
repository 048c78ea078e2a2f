"""Leases: a claimed run is kept under a lease that a watcher thread renews, so two workers never run one run
and a run whose worker died is found by `reap_interrupted_runs` (runs/execution.py). The same watcher notices
a cancel asked for (`Run.cancel_requested`, within about a second) or the task's timeout and stops the run
(etl_portal/cancellation.py).
"""
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import connection as db_connection

from etl_portal.cancellation import stop, stop_requested
from runs.models import Run

logger = logging.getLogger(__name__)
WATCH_SECONDS = 1.0


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


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
        return stop_requested(self.run_id)

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
                    stop(self.run_id, "cancelled")
                elif self.timeout_seconds and now - started >= self.timeout_seconds:
                    stop(self.run_id, "timeout")
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
