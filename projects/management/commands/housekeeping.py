"""`manage.py housekeeping`: the portal's housekeeping loop (projects/housekeeping.py), outside the run queue."""
import signal
import threading

from django.core.management.base import BaseCommand

from projects import housekeeping


class Command(BaseCommand):
    help = ("Every second, if this process leads (one leader across all hosts, by a lease in the database): fire "
            "due triggers, fail runs whose worker died, wake workers for stalled runs, run django-q2's "
            "schedules. Start one or more per installation (`serve` starts one); the others stand by. "
            "SIGTERM or Ctrl-C stops it and hands the lead over at once.")

    def handle(self, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write("Housekeeping started.")
        self.stdout.flush()
        housekeeping.serve_forever(stop)
        self.stdout.write("Housekeeping stopped.")
