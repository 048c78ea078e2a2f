from django.core.management.base import BaseCommand, CommandError

from projects import access
from runs import backfill
from runs.models import Backfill
from runs.orchestration import Refused
from tasks.models import Task


class Command(BaseCommand):
    help = ("Run a task, or every task a start of a project runs, once per date from --from to --to (as of each "
            "date: its {today} is the date, at midnight in the project's time zone), in date order, at most --at-once"
            " dates at a time; the runs are labelled as backfill and form one batch. --preview prints the first and "
            "last date's parameters and names without starting anything. --cancel BATCH cancels a batch (queued runs "
            "at once, running ones stopped). With --user, that user must be an editor of the project.")

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--task", type=int, metavar="TASK_ID", help="The task's id.")
        what.add_argument("--project", metavar="PROJECT", help="The project's id or exact name.")
        what.add_argument("--cancel", type=int, metavar="BATCH_ID", help="Cancel this backfill batch.")
        parser.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="The first date.")
        parser.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="The last date (default: --from).")
        parser.add_argument("--at-once", type=int, default=1, metavar="N",
                            help=f"How many dates may run at the same time (1 to {backfill.MAX_IN_FLIGHT}; default 1).")
        parser.add_argument("--preview", action="store_true", help="Print the plan and the parameters of the first "
                                                                   "and last date; start nothing.")
        access.add_command_user_argument(parser)

    def handle(self, task=None, project=None, cancel=None, first=None, last=None, at_once=1, preview=False,
               **options):
        user = access.command_user(options.get("user"))
        try:
            if cancel:
                batch = Backfill.objects.filter(pk=cancel).select_related("project").first()
                if batch is None:
                    raise CommandError(f"There is no backfill with id {cancel}")
                access.command_require(user, access.EDIT, batch, f"cancel backfill {cancel}")
                self.stdout.write(backfill.cancel(batch, user))
                return
            target_task, target_project = self._target(user, task, project)
            if not first:
                raise CommandError("Give --from DATE (and --to DATE for a range)")
            first_date = backfill.parse_date(first, "--from date")
            last_date = backfill.parse_date(last, "--to date") if last else first_date
            args = (target_project, target_task, first_date, last_date, at_once)
            if preview:
                self._print_plan(backfill.plan(*args))
                return
            batch, _ = backfill.start(*args, user=user)
        except Refused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"backfill {batch.pk}: {batch.runs.count()} run(s) for {batch.date_count} date(s) queued "
                          f"({first_date} to {last_date}, at most {at_once} at once)")

    def _target(self, user, task, project):
        if task:
            found = Task.objects.select_related("project").filter(pk=task).first()
            if found is None:
                raise CommandError(f"There is no task with id {task}")
            access.command_require(user, access.EDIT, found, f"backfill task {task}")
            return found, found.project
        if not project:
            raise CommandError("Give --task TASK_ID or --project PROJECT (or --cancel BATCH_ID)")
        found = access.command_project(user, project)
        access.command_require(user, access.EDIT, found, f"backfill project {found.name}")
        return None, found

    def _print_plan(self, plan):
        dates = plan["dates"]
        self.stdout.write(f"{plan['run_count']} run(s): {len(dates)} date(s) from {dates[0]} to {dates[-1]} x "
                          f"{len(plan['tasks'])} task(s)")
        for end in plan["previews"]:
            for item in end["tasks"]:
                shown = item["preview"]
                self.stdout.write(f"{end['date']} {item['task'].name}: file {shown.get('file_name', '')}")
                for error in shown.get("errors", []):
                    self.stdout.write(f"  ! {error}")
                for row in shown.get("parameters", []):
                    self.stdout.write(f"  {row['key']} = {row['value']}")
