import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the web server and a django-q2 worker cluster together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("ETL_LISTEN", "127.0.0.1:8000"))

    def handle(self, addr, **options):
        manage = [sys.executable, "manage.py"]
        children = [
            subprocess.Popen(manage + ["qcluster"]),
            subprocess.Popen(manage + ["runserver", "--noreload", addr]),
        ]
        self.stdout.write(f"ETL Portal on http://{addr}/ with a worker cluster; Ctrl-C stops both.")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if child is children[0] else signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        self.stdout.write("Stopped.")
