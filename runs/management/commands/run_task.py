import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from connections.protocols import ConnectorError
from projects import access
from runs import dry_run, parameters
from runs.execution import execute_run
from runs import backfill, queueing
from runs.orchestration import Refused
from runs.queueing import enqueue_run
from runs.models import Run
from tasks.models import Task


class Command(BaseCommand):
    help = ("Run a task now. By default the run is queued for the workers; with --sync it runs in this process, "
            "prints its log, and the command exits 1 when the run did not succeed. With --as-of DATE the run stands for"
            " that date (its {today}, at midnight in the project's time zone) and is labelled as a backfill (see the "
            "backfill command for ranges). With --user, that user must be an editor of the task's project.")

    def add_arguments(self, parser):
        parser.add_argument("task_id", type=int, help="The task's id (see the task page or the admin).")
        parser.add_argument("--sync", action="store_true", help="Run in the foreground and wait for the outcome.")
        parser.add_argument("--as-of", metavar="YYYY-MM-DD", help="Run as of this date (a backfill of one date).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Do everything but send: print the query, rows, files, destinations and emails a run "
                                 "would have (runs/dry_run.py), as of --as-of (default now), and the maintenance "
                                 "windows a run started now would wait for. Nothing is recorded or delivered.")
        access.add_command_user_argument(parser)

    def handle(self, task_id, sync, as_of=None, **options):
        user = access.command_user(options.get("user"))
        task = Task.objects.filter(pk=task_id).first()
        if task is None:
            raise CommandError(f"There is no task with id {task_id}")
        access.command_require(user, access.EDIT, task, f"run task {task_id}")
        if options.get("dry_run"):
            self.dry_run(task, as_of)
            return
        if as_of:
            run = self._as_of(task, as_of, user, sync)
            if not sync:
                return
        elif not sync:
            failed = queueing.failed_sends()
            with transaction.atomic():
                run = enqueue_run(task, Run.Trigger.COMMAND, user)
            # The run is saved either way; with the broker down it starts when the broker returns (exit 0: a
            # retry by the operator would make a second run).
            self.stdout.write(f"run {run.pk} {queueing.BROKER_DOWN if queueing.failed_sends() > failed else 'queued'}")
            return
        else:
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

    def _as_of(self, task, text, user, sync):
        """A backfill batch of one date; with --sync no worker is woken, this process runs it."""
        try:
            day = backfill.parse_date(text, "--as-of date")
            batch, _ = backfill.start(task.project, task, day, day, user=user, wake=not sync)
        except Refused as exc:
            raise CommandError(str(exc)) from None
        run = batch.runs.get()
        if not sync:
            self.stdout.write(f"run {run.pk} queued as of {day} (backfill {batch.pk})")
        return run

    def dry_run(self, task, when):
        try:
            moment = parameters.run_moment(task, None, when or None)
        except ConnectorError as exc:
            raise CommandError(exc.message) from None
        report = dry_run.build(task, moment)
        self.stdout.write(json.dumps(report, indent=2, default=str))
        if report.get("error"):
            raise CommandError(f"dry run: {report['outcome']}", returncode=1)
