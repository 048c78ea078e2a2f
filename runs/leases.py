"""Leases: a claimed run is kept under a lease that a watcher thread renews, so two workers never run one run
and a run whose worker died is found by `reap_interrupted_runs` (runs/execution.py). The same watcher notices
a cancel asked for (`Run.cancel_requested`, within about a second) or the task's timeout and stops the run
(etl_portal/cancellation.py).

Fencing: a renewal that fails (the watcher's own connection dropped: a proxy reset, a DBA kill, a database
restart, 'database is locked') is retried with a fresh connection until the lease is nearly over. Only then is
the lease given up: the keeper is `lost` and stops the run with the reason "lease lost", so blocking work is
interrupted, the pipeline never delivers, and runs/execution.py writes no outcome and starts nothing after it
(the reaper fails the run and retries it; the worker may not act on a run it no longer holds).
"""
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db.utils import InterfaceError, OperationalError

from etl_portal.cancellation import LEASE_LOST, stop, stop_requested
from runs.durable import reconnect
from runs.models import Run

logger = logging.getLogger(__name__)
WATCH_SECONDS = 1.0
# Give the lease up this share of it before it lapses, so the run is stopped before the reaper may fail it.
GIVE_UP_AT = 0.75


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
        self.attempt = None  # set by the caller; only the test-only failing renewal uses it

    @property
    def stop_reason(self):
        return stop_requested(self.run_id)

    def _renew(self):
        if settings.ETL_TEST_FAIL_LEASE_RENEWAL and self.attempt == 1:
            raise OperationalError("lease renewal made to fail (ETL_TEST_FAIL_LEASE_RENEWAL)")
        return Run.objects.renew_lease(self.run_id, self.worker)

    def _give_up(self, why):
        """The lease is gone: fence this worker off the run (see the module's docstring)."""
        self.lost = True
        logger.warning("Run %s: lease lost (%s); stopping it without delivering", self.run_id, why)
        stop(self.run_id, LEASE_LOST)

    def _watch(self):
        lease = settings.ETL_RUN_LEASE_SECONDS
        renew_every = max(1.0, lease / 3)
        started = time.monotonic()
        next_renewal, renewed = started + renew_every, started  # claiming the run took the first lease
        try:
            while not self._done.wait(min(WATCH_SECONDS, renew_every)):
                now = time.monotonic()
                if now >= next_renewal:
                    try:
                        held = self._renew()
                    except (OperationalError, InterfaceError) as exc:
                        # Only this thread's connection may be broken: reconnect and try again on the next tick.
                        reconnect()
                        if now - renewed < GIVE_UP_AT * lease:
                            logger.warning("Run %s: could not renew its lease (%s); retrying", self.run_id,
                                           type(exc).__name__)
                            continue
                        self._give_up(f"no renewal for {now - renewed:.0f} s")
                        return
                    if not held:  # the reaper failed the run, or it ended
                        if not self._done.is_set():
                            self._give_up("the run is no longer held by this worker")
                        return
                    renewed, next_renewal = now, now + renew_every
                if self.stop_reason:
                    continue
                try:
                    cancel = Run.objects.filter(pk=self.run_id, cancel_requested=True).exists()
                except (OperationalError, InterfaceError):
                    reconnect()  # asked again within a second; the lease decides whether the run goes on
                    continue
                if cancel:
                    stop(self.run_id, "cancelled")
                elif self.timeout_seconds and now - started >= self.timeout_seconds:
                    stop(self.run_id, "timeout")
        except Exception:  # a watcher failure must not kill the run: it is fenced off, never left unwatched
            logger.exception("Could not watch run %s", self.run_id)
            if not self._done.is_set():
                self._give_up("its watcher failed")
        finally:
            reconnect()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)


def effective_timeout(task):
    """The task's own limit, kept under django-q2's timeout so the portal, not django-q2, stops the run."""
    ceiling = max(1, settings.ETL_RUN_TIMEOUT - 30)
    return min(task.effective("timeout_seconds") or ceiling, ceiling)
