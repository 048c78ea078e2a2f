from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from runs.execution import enqueue_run, execute_run
from runs.models import Run
from tasks.models import Task


class Command(BaseCommand):
    help = ("Run a task now. By default the run is queued for the workers; with --sync it runs in this process, "
            "prints its log, and the command exits 1 when the run did not succeed.")

    def add_arguments(self, parser):
        parser.add_argument("task_id", type=int, help="The task's id (see the task page or the admin).")
        parser.add_argument("--sync", action="store_true", help="Run in the foreground and wait for the outcome.")

    def handle(self, task_id, sync, **options):
        try:
            task = Task.objects.get(pk=task_id)
        except Task.DoesNotExist:
            raise CommandError(f"There is no task with id {task_id}") from None
        if not sync:
            with transaction.atomic():
                run = enqueue_run(task, Run.Trigger.COMMAND)
            self.stdout.write(f"run {run.pk} queued")
            return
        # Created without the queue: the run belongs to this process alone.
        run = Run.objects.create(task=task, trigger=Run.Trigger.COMMAND)
        run.log("Started from the command line (--sync)")
        self.stdout.write(f"run {run.pk} started")
        execute_run(run.pk)
        run.refresh_from_db()
        for line in run.log_lines.all():
            self.stdout.write(f"  {line.created_at:%H:%M:%S} {line.level:7} {line.message}")
        self.stdout.write(f"run {run.pk} {run.status}")
        if run.status != Run.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error}", returncode=1)
