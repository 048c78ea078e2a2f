"""Apply a YAML configuration written by export_config; --plan shows what would change and changes nothing."""
from django.core.management.base import BaseCommand, CommandError

from api.config import ConfigError, import_config, plan
from api.management.commands.export_config import acting_user
from projects import access


class Command(BaseCommand):
    help = "Create, change or delete projects' tasks to match a YAML file (like terraform apply; --plan to preview)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The YAML file (- for standard input).")
        parser.add_argument("--plan", action="store_true", help="Print what would be created, changed or deleted.")
        access.add_command_user_argument(parser)

    def handle(self, *args, **options):
        import sys

        text = sys.stdin.read() if options["file"] == "-" else open(options["file"], encoding="utf-8").read()
        user = acting_user(options["user"])
        try:
            lines = plan(user, text) if options["plan"] else import_config(user, text)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("\n".join(lines))
