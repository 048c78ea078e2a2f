from django.core.management.base import BaseCommand, CommandError

from projects import access, scheduling
from projects.models import Project


class Command(BaseCommand):
    help = ("Remove every django-q2 schedule the portal made (names starting with 'etl:') and recreate them from the "
            "triggers of every project and system job, the pending retries and the reaper. With --project, only that "
            "project's. Safe to run at any time; use it after restoring a database or moving servers. With --user, "
            "that user must be an editor of the project, or a superuser for every schedule.")

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="Only this project's schedules (its id).")
        access.add_command_user_argument(parser)

    def handle(self, project=None, **options):
        user = access.command_user(options.get("user"))
        if project:
            found = Project.objects.filter(pk=project).first()
            if found is None:
                raise CommandError(f"There is no project with id {project}")
            access.command_require(user, access.EDIT, found, f"reschedule project {project}")
            made = scheduling.reschedule(project=found)
        else:
            # Every project's and the system jobs' schedules: the portal's own housekeeping.
            access.command_require(user, access.SUPERUSER, doing="reschedule every schedule")
            made = scheduling.reschedule_all()
        self.stdout.write(f"{made} schedule(s) recreated")
