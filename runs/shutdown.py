"""Graceful shutdown of a worker: SIGTERM lets its running run finish within ETL_SHUTDOWN_GRACE_SECONDS, else the
run is stopped and handed back to the queue (running -> queued, `Run.hand_back`) for another worker, with a log
line. A routine restart therefore never fails a run as *Interrupted*.

How it hooks into django-q2: a worker process (django_q/worker.py) starts with SIGTERM at its default (die at
once). `install` (connected to django-q2's post_spawn signal, runs/apps.py) replaces that in
each worker with `_on_sigterm`: an idle worker exits at once; a busy one starts the grace timer and exits when
its run ended or was handed back. `manage.py serve` sends SIGTERM to every process of the cluster but its main
process, waits for the workers to be gone, then stops the main process (runs/management/commands/serve.py). A
SIGTERM to the main process alone makes django-q2 wait for the workers to finish their task, without limit; one
to every process at once (systemd's KillMode=control-group on a bare qcluster) drains the workers the same way,
but django-q2's main process may then wait for ever on the sentinel the signal killed.
"""
import contextlib
import logging
import multiprocessing
import os
import signal
import threading

from django.conf import settings
from django.db import connections

from etl_portal.cancellation import stop
from runs.queueing import submit

logger = logging.getLogger(__name__)
SHUTTING_DOWN = "shutting down"
_running = {}  # run id -> worker id, the runs of this process
_lock = threading.Lock()
_stopping = threading.Event()


@contextlib.contextmanager
def running(run_id, worker):
    """Mark the block as this process executing `run_id`; when the process is shutting down, exit once it ends."""
    with _lock:
        _running[run_id] = worker
    try:
        yield
    finally:
        with _lock:
            _running.pop(run_id, None)
            last = not _running
        if _stopping.is_set() and last:
            _exit()


def hand_back(run, worker):
    """The worker is stopping before `run` finished: put it back in the queue and ask for a worker."""
    if run.hand_back(worker, f"Handed back to the queue: worker {worker.rsplit(':', 1)[0]} shut down before "
                             f"the run finished (grace {settings.ETL_SHUTDOWN_GRACE_SECONDS} s); it starts again"):
        submit(hint=run.pk)


def _exit():
    logger.info("Worker %s stopping after SIGTERM", os.getpid())
    connections.close_all()
    os._exit(0)  # django-q2's worker loop would wait for a task that no longer comes


def _grace_over():
    with _lock:
        runs = list(_running)
    for run_id in runs:
        logger.warning("Run %s did not finish within the shutdown grace; handing it back", run_id)
        stop(run_id, SHUTTING_DOWN)


def _on_sigterm(signum, frame):
    _stopping.set()
    with _lock:
        busy = bool(_running)
    if not busy:
        _exit()
    logger.info("Worker %s got SIGTERM: its run may finish within %s s", os.getpid(),
                settings.ETL_SHUTDOWN_GRACE_SECONDS)
    timer = threading.Timer(settings.ETL_SHUTDOWN_GRACE_SECONDS, _grace_over)
    timer.daemon = True
    timer.start()


def install(sender=None, **kwargs):
    """post_spawn receiver (sent by django-q2 in each worker process as it starts). django-q2's sync mode sends it
    in the calling process (the web server, a test), which is no worker and keeps its own SIGTERM handling."""
    if multiprocessing.current_process().name != "MainProcess" and \
            threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
