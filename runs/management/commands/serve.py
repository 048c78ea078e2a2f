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
        cluster, housekeeping, web = children
        # Stop taking new work first, then drain. gunicorn's master and housekeeping each take one SIGTERM and
        # stop their own workers gracefully. In the cluster every worker gets it (as under systemd's
        # KillMode=control-group) and finishes its run within ETL_SHUTDOWN_GRACE_SECONDS or hands it back to the
        # queue (runs/shutdown.py); django-q2's sentinel, pusher and monitor stop at once, so nothing new starts.
        # Its main process last, once it has nothing left: a SIGTERM to it alone makes django-q2 wait for the
        # running tasks without limit, and with the sentinel killed under it, it waits on the sentinel's stop event
        # for ever.
        for child in (web, housekeeping):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        _signal_group(cluster, signal.SIGTERM, but=cluster.pid)
        deadline = time.monotonic() + settings.ETL_SHUTDOWN_GRACE_SECONDS + 30  # the grace, a hand-back, the exit
        while _group(cluster.pid) - {cluster.pid} and time.monotonic() < deadline:
            time.sleep(0.2)
        if cluster.poll() is None:
            cluster.send_signal(signal.SIGTERM)
        for child, seconds in ((cluster, 15), (housekeeping, 30), (web, 30)):
            deadline = time.monotonic() + seconds
            while _group(child.pid) and time.monotonic() < deadline:
                child.poll()
                time.sleep(0.2)
            if _group(child.pid):
                self.stderr.write(f"Process {child.pid} did not stop in time: killed with its group")
                _signal_group(child, signal.SIGKILL)
            child.wait()
        self.stdout.write("Stopped.")
        if failed and not stopping:
            raise CommandError(f"{' '.join(failed[0].args[:4])} exited with status {failed[0].returncode}")


def _group(group):
    """The running processes of the process group `group` (zombies do not count)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    state, _parent, pgrp = stat.read().rsplit(")", 1)[1].split()[:3]
            except OSError:
                continue
            if int(pgrp) == group and state != "Z":
                found.add(int(entry.name))
    return found


def _signal_group(child, sig, but=None):
    """`sig` to every process of `child`'s group (each child leads its own), except the process `but`."""
    if but is None:
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        return
    for pid in _group(child.pid) - {but}:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
