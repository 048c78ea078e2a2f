"""Runs, their log lines and files; and a run's life: the statuses it may move through, in one table.

A run is created queued (or recorded as skipped at once: a missed start, a task still busy) and moves only
along `TRANSITIONS`. Every move is one conditional UPDATE, `WHERE status IN (the statuses it may come from)`,
so of two writers racing (a worker finishing, an operator cancelling, the reaper failing a lapsed lease)
exactly one wins and the other learns it lost. Every move is written to the portal's log (logger
`runs.models`), and the run's own log gets the line a person reading the run needs.
"""
import datetime
import logging

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from runs.durable import durable
from runs import archive
from projects.models import Project
from runs.masking import Masker, secret_values
from tasks.models import Task

logger = logging.getLogger(__name__)
WALK_SHARE = 50  # RunQuerySet.listed_for walks the runs for a user who sees at least 1/50 of the projects


class RunQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(task__in=Task.objects.visible_to(user))

    def listed_for(self, user):
        """The runs `user` sees (as `visible_to`), written for lists read newest first, a page at a time (the runs
        page, the dashboard). A user who sees a good share of the projects gets a correlated EXISTS: the database
        walks the runs in the list's order and stops after a page, where IN (tasks) made SQLite gather and sort
        every run of every task seen (7 s at a million runs). A user who sees few tasks keeps IN, which reads only
        their runs; a walk would pass over everyone else's first."""
        if user.is_superuser:
            return self.all()
        tasks = Task.objects.visible_to(user)
        # The share of projects seen stands for the share of tasks (counting 200 rows, not 10,000).
        seen = Project.objects.visible_to(user).values("pk")
        share = Project.objects.aggregate(seen=models.Count("pk", filter=models.Q(pk__in=seen)),
                                          every=models.Count("pk"))
        if share["seen"] * WALK_SHARE >= share["every"]:
            return self.filter(models.Exists(tasks.filter(pk=models.OuterRef("task_id"))))
        return self.filter(task__in=tasks)

    def latest_failed(self, tasks):
        """The failed runs that are the latest run of their task, for `tasks` (a queryset): the tasks still failing
        ("run all errored"). A task whose latest run is a queued retry or rerun is no longer among them."""
        latest = models.Subquery(Run.objects.filter(task=models.OuterRef("pk")).order_by("-id").values("pk")[:1])
        return self.filter(pk__in=tasks.annotate(latest_run=latest).values("latest_run"), status=Run.Status.FAILED)

    def move(self, to, from_=None, **fields):
        """Move the runs of this queryset to status `to`, those whose status allows it (`TRANSITIONS`, narrowed
        to `from_` when given), in one conditional UPDATE; return how many moved. A move the table does not
        allow is a programming error and raises ValueError."""
        allowed = [status for status, targets in TRANSITIONS.items() if to in targets]
        if from_ is not None:
            if not set(from_) <= set(allowed):
                raise ValueError(f"A run cannot move from {', '.join(sorted(set(from_) - set(allowed)))} to {to}")
            allowed = list(from_)
        if not allowed:
            raise ValueError(f"No run may move to {to}")
        if fields.get("finished_at") is not None:  # an end: keep how long it took, for the runs page's sort
            fields.setdefault("took", models.ExpressionWrapper(
                models.Value(fields["finished_at"], output_field=models.DateTimeField()) - models.F("started_at"),
                output_field=models.DurationField()))
        moved = self.filter(status__in=allowed).update(status=to, **fields)
        if moved:
            logger.info("%s run(s) moved from %s to %s", moved, "/".join(allowed), to)
        return moved

    def claim(self, run_id, worker):
        """Move a queued run to running for `worker`; False if another worker got it first."""
        now = timezone.now()
        return self.filter(id=run_id).move(
            Run.Status.RUNNING, started_at=now, worker=worker,
            lease_expires_at=now + datetime.timedelta(seconds=settings.ETL_RUN_LEASE_SECONDS),
        ) == 1

    def renew_lease(self, run_id, worker):
        return self.filter(id=run_id, status=Run.Status.RUNNING, worker=worker).update(
            lease_expires_at=timezone.now() + datetime.timedelta(seconds=settings.ETL_RUN_LEASE_SECONDS)
        ) == 1

    def lease_expired(self):
        return self.filter(status=Run.Status.RUNNING, lease_expires_at__lt=timezone.now())

    def create_skipped(self, task, reason, trigger, now=None, **fields):
        """Record a run that never starts (a missed start, a task still busy, a dependency not met)."""
        run = self.create(task=task, trigger=trigger, status=Run.Status.SKIPPED, error=reason,
                          finished_at=now or timezone.now(), priority=task.priority, **fields)
        logger.info("Run %s of task %s recorded as skipped", run.pk, task.pk)
        run.log(reason, level="warning")
        return run


# What a delivery record tells the manifest (RunFile.deliveries holds these and, for resends, who and when).
MANIFEST_DELIVERY_KEYS = ("connection", "kind", "path", "remote_size", "verified", "at", "answer", "resent_by")


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        WARNING = "warning", "Warning"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"

    FINISHED = (Status.SUCCEEDED, Status.WARNING, Status.FAILED, Status.CANCELLED, Status.SKIPPED)

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"
        RETRY = "retry", "Retry"
        DEPENDENCY = "dependency", "Dependency"
        COMMAND = "command", "Command line"
        BACKFILL = "backfill", "Backfill"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    attempt = models.PositiveIntegerField(default=1)
    first_attempt = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    scheduled_for = models.DateTimeField(
        default=timezone.now, help_text="The time the run stands for; dates in names and queries come from it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    query_text = models.TextField(blank=True, help_text="The query exactly as it ran.")
    rows = models.BigIntegerField(null=True, blank=True)
    columns = models.JSONField(default=list, blank=True,
                               help_text="The output's columns as [name, source type] (type null where the source "
                                         "declares none), as the query returned them.")
    drift = models.JSONField(default=dict, blank=True,
                             help_text="What changed since the task's last good run (runs/drift.py), and who "
                                       "accepted it.")
    worker = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=50, help_text="Copied from the task when queued.")
    trigger_source = models.ForeignKey("projects.Trigger", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="runs")
    upstream_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="downstream_runs", help_text="The run whose outcome started this.")
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits until then.")
    # One retry per failed attempt, whoever decides it (a worker fenced off late, the reaper): the unique key
    # makes a second schedule_retry for the same attempt create nothing (runs/orchestration.py).
    retry_of = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="retried_by", help_text="The failed attempt this run retries.")
    cancel_requested = models.BooleanField(default=False)
    # One rerun per failed run, however often the rerun is asked for (a double submit, two people at once): the
    # unique key makes a second `queueing.rerun` of the same run create nothing.
    # Finished minus started, written with the end by `move` (None for a run that never started): the runs page
    # sorts by it through its index, where sorting by the difference computed a million times took 20 s on SQLite.
    took = models.DurationField(null=True, blank=True, editable=False)
    rerun_of = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rerun",
                                    help_text="The failed run this run was started again for (same date).")
    backfill = models.ForeignKey("runs.Backfill", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="runs", help_text="The backfill batch this run belongs to.")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["task", "-id"], name="run_task_latest"),
            # The dashboard (failed and warning runs of the last 24 h, the timeline status by status) and the runs
            # page (sort by start, time range).
            models.Index(fields=["status", "started_at"], name="run_status_started"),
            models.Index(fields=["started_at"], name="run_started"),
            models.Index(fields=["took"], name="run_took"),
        ]

    def __str__(self):
        return f"Run {self.pk} of {self.task} ({self.status})"

    def save(self, *args, **kwargs):
        # `took` follows the times whichever way they are written: here, or by `RunQuerySet.move` for an end.
        self.took = self.finished_at - self.started_at if self.started_at and self.finished_at else None
        super().save(*args, **kwargs)

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def secrets(self):
        """Every secret value a run of its task could meet (runs/masking.py): read (and decrypted) once per Run
        instance, as its masker and the worker's scrubbing of errors need the same list."""
        if getattr(self, "_secrets", None) is None:
            self._secrets = secret_values(self.task)
        return self._secrets

    @property
    def masker(self):
        """Hides the task's secrets (runs/masking.py); worked out once per Run instance, as a run's log lines
        all go through the one instance the worker holds."""
        if getattr(self, "_masker", None) is None:
            self._masker = Masker(self.secrets)
        return self._masker

    def manifest(self):
        """What this run delivered, as proof for the receiver and the auditor (JSON-ready): each file with its
        size, md5 and sha256, and each place it landed with the size read back from there. Names and paths are
        shown masked, as on the pages."""
        zone = self.task.project.time_zone
        return {
            "run": self.pk, "task": self.task.name, "project": self.task.project.name, "status": self.status,
            "scheduled_for": self.scheduled_for.isoformat() if self.scheduled_for else None, "time_zone": zone,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "files": [{"name": run_file.display_name, "size": run_file.size, "md5": run_file.md5,
                       "sha256": run_file.sha256 or None,
                       "deliveries": [{key: record.get(key) for key in MANIFEST_DELIVERY_KEYS if key in record}
                                      for record in run_file.shown_deliveries]}
                      for run_file in self.files.order_by("id")],
        }

    def log(self, message, level="info"):
        # Every log line passes here, whoever writes it: the one exit where secrets are masked. `durable`: a
        # database restart during a run costs a reconnect, not the run.
        message = self.masker(message)
        return durable(lambda: RunLog.objects.create(run=self, level=level, message=message))

    # --- what a run records while its worker holds it: durable (a database restart costs a reconnect) and fenced
    # (a worker that lost the run, runs/leases.py, changes nothing) ---

    def _held(self):
        """This run, while the worker that claimed it (`self.worker`) still holds it."""
        runs = Run.objects.filter(pk=self.pk)
        return runs.filter(worker=self.worker, status=self.Status.RUNNING) if self.worker else runs

    def record(self, **fields):
        """Write what the run found (its query text, its row count and columns); False when its worker no longer
        holds it. A run never saved (a dry run, runs/dry_run.py) only keeps them on itself."""
        recorded = self.pk is None or durable(lambda: self._held().update(**fields)) == 1
        if recorded:
            for name, value in fields.items():
                setattr(self, name, value)
        return recorded

    def record_files(self, files):
        """Save the run's delivered files (unsaved RunFile objects) in one transaction, while its worker holds it;
        False when it does not. Idempotent: a write retried after its connection was lost at the commit finds
        the files there and adds nothing."""
        def write():
            with transaction.atomic():
                # A write first (that changes nothing): it takes the run's row lock (PostgreSQL) or the write lock
                # (SQLite, waiting its busy timeout; a read first would fail at once when another writer came
                # between), so the check and the insert are one step.
                if not self._held().update(worker=models.F("worker")):
                    return False
                if not self.files.exists():
                    RunFile.objects.bulk_create(files)
                return True

        return durable(write)

    # --- its life: every status change of a run passes here (see TRANSITIONS) ---

    def _move(self, to, from_, error="", message=None, level="info", now=None, owner=None, **fields):
        """Move this run from one of `from_` to `to`, with its error and end time; False when its status in the
        database no longer allows it (another writer moved it first). The winner logs `message`. With `owner`
        (a worker id) only while that worker holds the run: a worker fenced off (its lease lapsed, the reaper
        failed the run) changes nothing."""
        error = self.masker(error) if error else error
        now = now or timezone.now()
        runs = Run.objects.filter(pk=self.pk)
        if owner is not None:
            runs = runs.filter(worker=owner)
        moved = durable(lambda: runs.move(to, from_, finished_at=now, error=error, **fields))
        if moved:
            self.status, self.finished_at, self.error = to, now, error
            for name, value in fields.items():
                setattr(self, name, value)
            if message:
                self.log(message, level=level)
        return bool(moved)

    def finish(self, status, error="", message=None, level="info", owner=None):
        """Record a running run's outcome unless it already finished (e.g. cancelled meanwhile); with `owner`,
        only while that worker holds it (see `_move`)."""
        return self._move(status, [self.Status.RUNNING], error, message, level, owner=owner,
                          lease_expires_at=None)

    def mark_succeeded(self, message=None, owner=None):
        return self.finish(self.Status.SUCCEEDED, message=message, owner=owner)

    def mark_warning(self, reason, owner=None):
        # Logged by the winner only: a worker fenced off writes nothing.
        return self.finish(self.Status.WARNING, reason, reason, "warning", owner=owner)

    def mark_failed(self, error, owner=None):
        return self.finish(self.Status.FAILED, error, error, "error", owner=owner)

    def hand_back(self, owner, reason):
        """Put a running run back in the queue (its worker is shutting down and did not finish it in time); False
        when `owner` no longer holds it. Its next attempt starts from scratch; nothing was delivered."""
        moved = durable(lambda: Run.objects.filter(pk=self.pk, worker=owner).move(
            self.Status.QUEUED, [self.Status.RUNNING], worker="", started_at=None, lease_expires_at=None))
        if moved:
            self.status, self.worker = self.Status.QUEUED, ""
            self.log(reason, level="warning")
        return bool(moved)

    def cancel_queued(self, reason, now=None):
        """Cancel a run that has not started; False when it started (or ended) meanwhile."""
        return self._move(self.Status.CANCELLED, [self.Status.QUEUED], reason, reason, "warning", now)

    def skip_queued(self, reason, now=None):
        """Skip a run that has not started (what it waited on failed); False when it started meanwhile."""
        return self._move(self.Status.SKIPPED, [self.Status.QUEUED], reason, reason, "warning", now)

    def request_cancel(self):
        """Ask the worker of a running run to stop it (it notices within about a second, see runs/leases.py);
        False when the run is not running."""
        asked = Run.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(cancel_requested=True) == 1
        if asked:
            self.cancel_requested = True
        return asked


# Where a run may go from each status; finished runs go nowhere. Derived from what the portal does: a worker
# claims a queued run, an operator cancels it, a failed predecessor skips it; a running run ends in one of four
# outcomes (cancelled when an operator stopped it or the reaper finds it was asked to stop), or goes back to the
# queue when its worker shuts down (SIGTERM, a routine restart) before it could finish (`Run.hand_back`).
TRANSITIONS = {
    Run.Status.QUEUED: (Run.Status.RUNNING, Run.Status.CANCELLED, Run.Status.SKIPPED),
    Run.Status.RUNNING: (Run.Status.SUCCEEDED, Run.Status.WARNING, Run.Status.FAILED, Run.Status.CANCELLED,
                         Run.Status.QUEUED),
}


class Backfill(models.Model):
    """One request to run a task, or a whole project, once per date of a range: a batch its runs point to, so
    they are labelled as backfill and cancelled together (runs/backfill.py). At most `max_dates` dates are in
    flight at once, the earliest first (runs/orchestration.py, when a run is claimed)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="backfills")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="backfills",
                             help_text="Blank: every task a start of the project runs.")
    first_date = models.DateField()
    last_date = models.DateField()
    max_dates = models.PositiveSmallIntegerField(default=1, help_text="How many dates run at once.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    # The confirm form's one-time token: a second submit of the same form finds the batch the first made.
    token = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "backfills"

    def __str__(self):
        what = self.task.name if self.task_id else f"project {self.project.name}"
        return f"Backfill #{self.pk} of {what}, {self.first_date} to {self.last_date}"

    @property
    def date_count(self):
        return (self.last_date - self.first_date).days + 1

    def counts(self):
        """Its runs by status: {status: count}."""
        return dict(self.runs.values_list("status").annotate(n=models.Count("id")).order_by())

    @property
    def state(self):
        """"cancelled", "running" (some run has not ended) or "finished"."""
        if self.cancelled_at:
            return "cancelled"
        return "running" if self.runs.filter(status__in=(Run.Status.QUEUED, Run.Status.RUNNING)).exists() \
            else "finished"

    def get_absolute_url(self):
        from django.urls import reverse

        return reverse("runs:backfill", args=[self.pk])


class RunLog(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    created_at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.created_at:%H:%M:%S} {self.level}: {self.message}"


class RunFileQuerySet(models.QuerySet):
    def published_to(self, user):
        published = Task.objects.filter(Q(publish_to_users=user) | Q(publish_to_groups__in=user.groups.all()))
        return self.filter(run__task__in=published.values("pk"), purged_at__isnull=True)


class RunFile(models.Model):
    """One output file as it was finally delivered; the stored copy may be purged, the record stays."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)  # the real name, as delivered
    shown_name = models.CharField(max_length=255, blank=True,
                                  help_text="The name with secret values masked when the file was recorded.")
    size = models.BigIntegerField()
    md5 = models.CharField(max_length=32)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Empty for files recorded before it was kept.")
    stored_path = models.CharField(max_length=1024, blank=True)
    deliveries = models.JSONField(default=list, blank=True, help_text="Where the file was delivered.")
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    objects = RunFileQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self):
        """The name pages, emails and downloads show, secrets masked (runs/masking.py).

        Masked when the file is recorded (older records by migration runs 0005), not at display time: a
        secret changed since is still hidden, and a page of fifty files costs no secret look-ups.
        """
        return self.shown_name or self.name

    @property
    def shown_deliveries(self):
        """The delivery records with their paths masked (as `display_name`); `deliveries` keeps the real paths
        the resend and the vendor need."""
        return [{**record, "path": record.get("shown_path", record.get("path", ""))}
                for record in self.deliveries or []]

    @property
    def shown_stored_path(self):
        """Where the portal keeps its copy, as pages may show it: only the file's own name can hold a secret."""
        folder, _, name = (self.stored_path or "").rpartition("/")
        if name == self.name:
            return f"{folder}/{self.display_name}"
        return self.run.masker(self.stored_path)

    @staticmethod
    def shown_record(record, masker):
        """A delivery record as it is stored: with `shown_path` when masking changed its path (only then, so a
        record without secrets stays as it was)."""
        shown = masker(record.get("path", ""))
        return record if shown == record.get("path", "") else {**record, "shown_path": shown}

    @property
    def is_available(self):
        return bool(self.stored_path) and self.purged_at is None and archive.exists(self.stored_path)


class FileDownload(models.Model):
    """Every download of an output file from the portal, for the file hub's audit trail."""

    run_file = models.ForeignKey(RunFile, on_delete=models.CASCADE, related_name="downloads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    downloaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class DryRun(models.Model):
    """A dry run of a task for a date (runs/dry_run.py): everything a run would do except sending anything out.
    Worked out by a worker; its report is kept for the page, the command and the API."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="dry_runs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    scheduled_for = models.DateTimeField(help_text="The run's date: parameters resolve as of then.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"Dry run {self.pk} of {self.task}"

    @property
    def is_finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)

    def claim(self):
        """queued -> running, one winner (django-q2 may hand the same job out twice)."""
        return DryRun.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(status=self.Status.RUNNING) == 1

    def finish(self, report=None, error=""):
        self.status = self.Status.FAILED if error else self.Status.DONE
        self.report, self.error, self.finished_at = report or {}, error, timezone.now()
        self.save(update_fields=["status", "report", "error", "finished_at"])
