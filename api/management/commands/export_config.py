"""Write projects, triggers, parameters and tasks as YAML (tasks as code)."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from api.config import export_config
from projects import access
from projects.models import Project


def acting_user(username):
    """The --user to act as, else the server's operator (sees everything, like the other commands)."""
    return access.command_user(username) or get_user_model()(username="operator", is_superuser=True, is_active=True)


class Command(BaseCommand):
    help = "Print the configuration (projects, triggers, parameters, tasks) as YAML; never any secret."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, action="append", help="Only this project id (repeatable).")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")
        access.add_command_user_argument(parser)

    def handle(self, *args, **options):
        user = acting_user(options["user"])
        projects = Project.objects.visible_to(user)
        if options["project"]:
            projects = projects.filter(pk__in=options["project"])
        text = export_config(user, projects)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
