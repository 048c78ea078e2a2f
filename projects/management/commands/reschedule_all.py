from django.core.management.base import BaseCommand

from projects import scheduling
from projects.models import Project


class Command(BaseCommand):
    help = ("Remove every django-q2 schedule the portal made (names starting with 'etl:') and recreate them from "
            "the triggers of every project and system job, the pending retries and the reaper. With --project, "
            "only that project's. Safe to run at any time; use it after restoring a database or moving servers.")

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="Only this project's schedules (its id).")

    def handle(self, project=None, **options):
        if project:
            made = scheduling.reschedule(project=Project.objects.get(pk=project))
        else:
            made = scheduling.reschedule_all()
        self.stdout.write(f"{made} schedule(s) recreated")
