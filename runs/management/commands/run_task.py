import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from connections.protocols import ConnectorError
from projects import access
from runs import dry_run, parameters
from runs.execution import execute_run
from runs import queueing
from runs.queueing import enqueue_run
from runs.models import Run
from tasks.models import Task


class Command(BaseCommand):
    help = ("Run a task now. By default the run is queued for the workers; with --sync it runs in this process, "
            "prints its log, and the command exits 1 when the run did not succeed. With --user, that user must be an "
            "editor of the task's project.")

    def add_arguments(self, parser):
        parser.add_argument("task_id", type=int, help="The task's id (see the task page or the admin).")
        parser.add_argument("--sync", action="store_true", help="Run in the foreground and wait for the outcome.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Do everything but send: print the query, rows, files, destinations and emails a run "
                                 "would have (runs/dry_run.py). Nothing is recorded or delivered.")
        parser.add_argument("--date", help="With --dry-run: as a run on this date (YYYY-MM-DD) or moment; default now.")
        access.add_command_user_argument(parser)

    def handle(self, task_id, sync, **options):
        user = access.command_user(options.get("user"))
        task = Task.objects.filter(pk=task_id).first()
        if task is None:
            raise CommandError(f"There is no task with id {task_id}")
        access.command_require(user, access.EDIT, task, f"run task {task_id}")
        if options.get("dry_run"):
            self.dry_run(task, options.get("date"))
            return
        if not sync:
            failed = queueing.failed_sends()
            with transaction.atomic():
                run = enqueue_run(task, Run.Trigger.COMMAND, user)
            # The run is saved either way; with the broker down it starts when the broker returns (exit 0: a
            # retry by the operator would make a second run).
            self.stdout.write(f"run {run.pk} {queueing.BROKER_DOWN if queueing.failed_sends() > failed else 'queued'}")
            return
        # Created without the queue: the run belongs to this process alone.
        run = Run.objects.create(task=task, trigger=Run.Trigger.COMMAND, requested_by=user)
        run.log(f"Started from the command line (--sync){' by ' + user.username if user else ''}")
        self.stdout.write(f"run {run.pk} started")
        execute_run(run.pk)
        run.refresh_from_db()
        for line in run.log_lines.all():
            self.stdout.write(f"  {line.created_at:%H:%M:%S} {line.level:7} {line.message}")
        self.stdout.write(f"run {run.pk} {run.status}")
        if run.status != Run.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error}", returncode=1)

    def dry_run(self, task, when):
        try:
            moment = parameters.run_moment(task, None, when or None)
        except ConnectorError as exc:
            raise CommandError(exc.message) from None
        report = dry_run.build(task, moment)
        self.stdout.write(json.dumps(report, indent=2, default=str))
        if report.get("error"):
            raise CommandError(f"dry run: {report['outcome']}", returncode=1)
