from django.core.management.base import BaseCommand, CommandError

from projects import access
from runs import orchestration
from runs.models import Run
from tasks.models import Task


class Command(BaseCommand):
    help = ("Cancel a run: a queued run is cancelled at once; a running one is asked to stop (its query is cancelled,"
            " its script killed, its transfer closed) and ends as cancelled. With --retries TASK_ID, cancel the "
            "pending retries of that task instead (refused while the task is running). With --user, that user must be"
            " an editor of the run's project.")

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int, nargs="?", help="The run's id (see the task page).")
        parser.add_argument("--retries", type=int, metavar="TASK_ID",
                            help="Cancel the pending retries of this task.")
        access.add_command_user_argument(parser)

    def handle(self, run_id=None, retries=None, **options):
        user = access.command_user(options.get("user"))
        try:
            if retries:
                task = Task.objects.filter(pk=retries).first()
                if task is None:
                    raise CommandError(f"There is no task with id {retries}")
                access.command_require(user, access.EDIT, task, f"cancel the retries of task {retries}")
                self.stdout.write(orchestration.cancel_retries(task, user))
                return
            if run_id is None:
                raise CommandError("Give a run id, or --retries TASK_ID")
            run = Run.objects.filter(pk=run_id).first()
            if run is None:
                raise CommandError(f"There is no run with id {run_id}")
            access.command_require(user, access.EDIT, run, f"cancel run {run_id}")
            self.stdout.write(orchestration.cancel_run(run, user))
        except orchestration.Refused as exc:
            raise CommandError(str(exc)) from None
