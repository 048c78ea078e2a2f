import time

from django.core.management.base import BaseCommand, CommandError

from projects import access
from runs import orchestration
from runs.models import Run


class Command(BaseCommand):
    help = ("Start a project now, as its triggers would: series projects run their enabled tasks one after another by"
            " run rank, parallel projects start them together. Runs are queued for the workers (python manage.py "
            "qcluster); with --wait the command waits for them and exits 1 unless all succeed. With --user, that user"
            " must be an editor of the project.")

    def add_arguments(self, parser):
        parser.add_argument("project", help="The project's id or exact name.")
        parser.add_argument("--wait", action="store_true", help="Wait until every run of this start has ended.")
        parser.add_argument("--timeout", type=int, default=3600, help="With --wait: give up after this many "
                                                                       "seconds (default 3600).")
        access.add_command_user_argument(parser)

    def handle(self, project, wait, timeout, **options):
        user = access.command_user(options.get("user"))
        project = access.command_project(user, project)
        access.command_require(user, access.EDIT, project, f"start project {project.name}")
        if not project.enabled:
            raise CommandError(f"Project {project.name} is disabled; enable it first")
        runs = orchestration.start_project(project, Run.Trigger.COMMAND, user=user)
        if not runs:
            raise CommandError(f"Project {project.name} has no enabled task to run")
        for run in runs:
            self.stdout.write(f"run {run.pk} {run.task.name}: {run.status}{' - ' + run.error if run.error else ''}")
        if not wait:
            return
        ids = [run.pk for run in runs]
        deadline = time.monotonic() + timeout
        while Run.objects.filter(pk__in=ids).exclude(status__in=Run.FINISHED).exists():
            if time.monotonic() > deadline:
                raise CommandError(f"Runs still unfinished after {timeout} s", returncode=2)
            time.sleep(1)
        failed = 0
        for run in Run.objects.filter(pk__in=ids).select_related("task").order_by("id"):
            latest = Run.objects.filter(first_attempt=run).order_by("-attempt").first() or run
            self.stdout.write(f"run {latest.pk} {run.task.name}: {latest.status}"
                              f"{' - ' + latest.error if latest.error else ''}")
            failed += latest.status not in (Run.Status.SUCCEEDED, Run.Status.WARNING)
        if failed:
            raise CommandError(f"{failed} run(s) did not succeed", returncode=1)
