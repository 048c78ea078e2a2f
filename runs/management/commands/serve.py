"""`manage.py serve`: the production web server (gunicorn), a django-q2 worker cluster and the housekeeping loop,
stopped together.

Gunicorn rather than granian: it is pure Python (one small wheel, nothing compiled to trust or build), the
server Django's own deployment docs describe, and its threaded workers suit this app, whose requests block on
databases and file servers; granian's edge is async/HTTP2 throughput the portal does not need. Static files
are served by WhiteNoise inside the app (see settings), so no second server is needed.
"""
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Serve the portal through gunicorn (static files by WhiteNoise) with a django-q2 worker cluster and "
            "the housekeeping loop; Ctrl-C or SIGTERM stops them all.")

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=settings.ETL_LISTEN,
                            help="host:port to listen on (default: ETL_LISTEN, else 127.0.0.1:8000).")
        parser.add_argument("--web-workers", type=int, default=settings.ETL_WEB_WORKERS,
                            help="gunicorn worker processes (default: ETL_WEB_WORKERS, else 2).")

    def handle(self, addr, web_workers, **options):
        if web_workers < 1:
            raise CommandError("--web-workers must be at least 1")
        base = str(settings.BASE_DIR)
        gunicorn = [
            sys.executable, "-m", "gunicorn", "etl_portal.wsgi:application",
            "--bind", addr, "--workers", str(web_workers),
            # Threads: a slow page (a connection test, a large download) does not hold a whole process, and
            # the worker's heartbeat keeps going, so a long download is not killed as a hung worker.
            "--worker-class", "gthread", "--threads", "4",
            "--graceful-timeout", "20", "--access-logfile", "-",
            # Gunicorn's control socket defaults to one path per user: two portals on a machine would collide.
            "--no-control-socket",
        ]
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        # Set before the children start, so a signal arriving during start-up is not lost.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # Each child in its own process group: a stop signal reaches it once (from here, not also from the
        # terminal), and whatever it left behind can be ended as a group.
        children = [
            subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=base, start_new_session=True),
            # Triggers, the reaper and retries, outside the run queue (projects/housekeeping.py).
            subprocess.Popen([sys.executable, "manage.py", "housekeeping"], cwd=base, start_new_session=True),
            subprocess.Popen(gunicorn, cwd=base, start_new_session=True),
        ]
        self.stdout.write(f"ETL Portal on http://{addr}/ (gunicorn, {web_workers} workers) with a worker cluster; "
                          f"Ctrl-C stops both.")
        self.stdout.flush()
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        failed = [child for child in children if child.poll() not in (None, 0)]
        for child in children:
            # The leader only: gunicorn's master and qcluster's main process each stop their own workers in
            # order; signalling the whole group at once leaves qcluster waiting on a sentinel already gone.
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.stderr.write(f"Process {child.pid} did not stop within 30 s: killed with its group")
                _signal_group(child, signal.SIGKILL)
                child.wait()
        self.stdout.write("Stopped.")
        if failed and not stopping:
            raise CommandError(f"{' '.join(failed[0].args[:4])} exited with status {failed[0].returncode}")


def _signal_group(child, sig):
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
