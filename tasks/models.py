import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from simple_history.models import HistoricalRecords

from connections.models import Connection
from projects.models import Project, Trigger
from tasks import inheritance, source_kinds


def run_timeout_limit():
    """A task may shorten the portal's run timeout, never lengthen it (django-q2 kills a run past it anyway)."""
    return settings.ETL_RUN_TIMEOUT


# Bounds the code using these numbers can hold: timedelta and datetime arithmetic (retention, retry delays)
# overflow far below what the database accepts, and a typed 99999999999999 must be a form error, not a 500.
MAX_RETENTION_DAYS = 36500  # 100 years
MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
MAX_ACK_WAIT_MINUTES = 24 * 60  # a run holds its worker while it waits


def bounded(low, high):
    return [MinValueValidator(low), MaxValueValidator(high)]


class TaskQuerySet(models.QuerySet):
    # Membership tests are subqueries, not joins, so no row is repeated and no DISTINCT is needed.
    # Who may see or change a task is decided by its project (projects.access explains the roles).
    def visible_to(self, user):
        if user.is_superuser:
            return self
        return self.filter(project__in=Project.objects.visible_to(user).values("pk"))

    def editable_by(self, user):
        if user.is_superuser:
            return self
        return self.filter(project__in=Project.objects.editable_by(user).values("pk"))

    def owned_by(self, user):
        return self.filter(project__owner=user)

    def set_enabled(self, enabled):
        """Enable or disable these tasks; return how many changed. One save per task, not update(), so each change
        enters the task's history with its author (the pages, the admin and the project page all come here)."""
        tasks = list(self.exclude(enabled=enabled))
        for task in tasks:
            task.enabled = enabled
            task.save(update_fields=["enabled", "updated_at"])
        return len(tasks)

    def with_run_summary(self):
        """Annotate the last run's status and time and the project's next trigger time, in one query."""
        # Runs are a layer above tasks (runs.models imports this module): reach them through the reverse relation
        # their foreign key declares, not by importing them.
        Run = self.model._meta.get_field("runs").related_model
        last_run = Run.objects.filter(task=OuterRef("pk")).order_by("-id")
        next_trigger = Trigger.objects.filter(project=OuterRef("project"), enabled=True,
                                              next_run_at__isnull=False).order_by("next_run_at")
        return self.annotate(
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
            next_run_at=Subquery(next_trigger.values("next_run_at")[:1]),
        )


class Task(models.Model):
    class TextLocation(models.TextChoices):
        """Where a query, script or command text comes from at run time."""

        INLINE = "inline", "Typed in"
        REMOTE = "remote", "Loaded from a connection (SFTP, FTP, SMB, GitLab, web)"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (.xlsx)"
        JSONL = "jsonl", "JSON Lines"
        PARQUET = "parquet", "Parquet"
        FIXED = "fixed", "Fixed width"

    class Compression(models.TextChoices):
        SNAPPY = "snappy", "Snappy (fast)"
        ZSTD = "zstd", "Zstandard (smaller)"
        GZIP = "gzip", "Gzip"
        NONE = "none", "None"

    class Quoting(models.TextChoices):
        MINIMAL = "minimal", "Minimal (only when needed)"
        ALL = "all", "All fields"
        NONNUMERIC = "nonnumeric", "Non-numeric fields"
        NONE = "none", "None (escape with backslash)"

    class LineTerminator(models.TextChoices):
        LF = "lf", "LF (Unix)"
        CRLF = "crlf", "CRLF (Windows)"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8", "UTF-8"
        UTF8_BOM = "utf-8-sig", "UTF-8 with BOM"
        CP1252 = "cp1252", "Windows-1252"

    class NoFiles(models.TextChoices):
        FAIL = "fail", "Fail the run"
        WARN = "warn", "Finish with a warning"
        SUCCEED = "succeed", "Succeed quietly"

    class FileHandling(models.TextChoices):
        AS_IS = "as_is", "Pass through unchanged (byte for byte)"
        REWRITE = "rewrite", "Re-write as CSV with the output settings"

    class DriftCheck(models.TextChoices):
        WARN = "warn", "Warn, and deliver"
        STOP = "stop", "Stop delivery (the run fails)"
        OFF = "off", "Don't check"

    class DependencyMode(models.TextChoices):
        ALL = "all", "All conditions"
        ANY = "any", "Any condition"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tasks")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    run_rank = models.PositiveIntegerField(default=1, validators=bounded(0, 1_000_000),
                                           help_text="Order within a series project; lower runs first.")
    enabled = models.BooleanField(default=True)

    # --- source ---
    # The key of a kind in tasks/source_kinds/. Its choices are the registry's, read through a callable: a
    # migration names the callable, not the list, so a new kind needs no migration.
    source_kind = models.CharField(max_length=source_kinds.KEY_LENGTH, default=source_kinds.DEFAULT,
                                   choices=source_kinds.choices)
    source_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="source_tasks",
        help_text="The database (query), file server (files) or SSH server (command).",
    )
    text_location = models.CharField(max_length=10, choices=TextLocation.choices, default=TextLocation.INLINE,
                                     help_text="Where the query, script or command comes from.")
    text_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="text_tasks",
        help_text="Connection holding the query/script/command file.",
    )
    text_path = models.CharField(max_length=1024, blank=True,
                                 help_text="File path (or folder, for a multi-file script) on that connection.")
    text_entry = models.CharField(max_length=255, blank=True, help_text="Script file to run inside a folder.")
    cache_remote_text = models.BooleanField(
        default=False, help_text="Keep the last text fetched; use it (with a warning) when the next fetch fails.")
    query = models.TextField(blank=True)
    include_headers = models.BooleanField(default=True)
    script = models.TextField(blank=True, help_text="Python source when the source is a script.")
    command = models.TextField(blank=True, help_text="Shell command(s) when the source is SSH.")
    file_folder = models.CharField(max_length=1024, blank=True)
    file_pattern = models.CharField(max_length=255, blank=True, help_text="Name or wildcard, e.g. report_%Y%m%d_*.csv")
    on_no_files = models.CharField(max_length=10, choices=NoFiles.choices, default=NoFiles.FAIL)
    file_handling = models.CharField(max_length=10, choices=FileHandling.choices, default=FileHandling.AS_IS)
    delete_source_files = models.BooleanField(default=False)

    # --- processing script ---
    processing_location = models.CharField(max_length=10, choices=TextLocation.choices, blank=True,
                                           help_text="Blank: no processing script.")
    processing_script = models.TextField(blank=True)
    processing_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="processing_tasks")
    processing_path = models.CharField(max_length=1024, blank=True)
    processing_entry = models.CharField(max_length=255, blank=True)

    # --- output file ---
    file_name = models.CharField(max_length=255, blank=True,
                                 help_text="Parameters allowed, e.g. orders_{yesterday:%Y%m%d}.csv")
    # The settings levels share (tasks/inheritance.py): NULL means "not set on the task", the project's or the
    # organization's value applies, else the portal's default. Read them through effective_settings().
    file_format = models.CharField(max_length=10, choices=FileFormat.choices, null=True, blank=True)
    csv_delimiter = models.CharField(max_length=5, null=True, blank=True)
    csv_quoting = models.CharField(max_length=12, choices=Quoting.choices, null=True, blank=True)
    line_terminator = models.CharField(max_length=4, choices=LineTerminator.choices, null=True, blank=True)
    encoding = models.CharField(max_length=10, choices=Encoding.choices, null=True, blank=True)
    cut_long_values = models.BooleanField(
        default=False, help_text="Cut a value longer than the format holds (an Excel cell's 32,767 characters, a "
                                 "fixed-width column) and count it in a warning, instead of failing the run.")
    fixed_width_layout = models.TextField(
        blank=True, help_text="Fixed width: one line per column, 'width [left|right] [pad] [format]', e.g. "
                              "'10 left space', '8 right 0', '8 left space %Y%m%d', '12 right 0 .2f'.")
    parquet_compression = models.CharField(max_length=10, choices=Compression.choices, null=True, blank=True)
    append_to_lines = models.CharField(max_length=50, blank=True, help_text="Characters appended to every line.")
    gpg_key = models.ForeignKey("connections.Connection", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="gpg_tasks", help_text="Encrypt each file to this key (.gpg).")
    zip_output = models.BooleanField(default=False)
    zip_name = models.CharField(max_length=255, blank=True, help_text="Parameters allowed; default: <task>.zip")
    write_md5_file = models.BooleanField(default=False, help_text="Deliver a .md5 file beside each file.")
    retention_days = models.PositiveIntegerField(null=True, blank=True, validators=bounded(0, MAX_RETENTION_DAYS),
                                                 help_text="Keep output files this long (0: forever).")

    # --- default destination (used when the task lists no destinations of its own) ---
    destination_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="default_for_tasks",
        help_text="Where the files go when the task lists no destinations of its own.")
    destination_folder = models.CharField(max_length=1024, null=True, blank=True,
                                          help_text="Folder on that connection; parameters allowed.")

    # --- notifications ---
    drift_check = models.CharField(
        max_length=4, choices=DriftCheck.choices, default=DriftCheck.WARN,
        help_text="Before delivery: columns added, removed, renamed or retyped since the last good run, or a row "
                  "count outside what this task usually returns (runs/drift.py).")
    test_mode = models.BooleanField(null=True, blank=True, help_text="Send every email to the test address instead.")
    test_email = models.EmailField(null=True, blank=True)
    # The mailboxes of each outcome, beside the task's own emails (Notification); "none" sends none.
    error_recipients = models.TextField(null=True, blank=True, help_text="Addresses; none: no email.")
    error_smtp_connection = models.ForeignKey("connections.Connection", null=True, blank=True,
                                              on_delete=models.PROTECT, related_name="error_mail_tasks")
    warning_recipients = models.TextField(null=True, blank=True, help_text="Addresses; none: no email.")
    warning_smtp_connection = models.ForeignKey("connections.Connection", null=True, blank=True,
                                                on_delete=models.PROTECT, related_name="warning_mail_tasks")
    success_recipients = models.TextField(null=True, blank=True, help_text="Addresses; none: no email.")
    success_smtp_connection = models.ForeignKey("connections.Connection", null=True, blank=True,
                                                on_delete=models.PROTECT, related_name="success_mail_tasks")

    # --- schedule-related ---
    priority = models.PositiveSmallIntegerField(default=50, validators=bounded(1, 100),
                                                help_text="1 is highest, 100 lowest.")
    max_instances = models.PositiveIntegerField(default=1, validators=bounded(1, 100))
    timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(run_timeout_limit)],
        help_text="Blank: inherited, else the portal's default.")
    dependency_mode = models.CharField(max_length=3, choices=DependencyMode.choices, default=DependencyMode.ALL)

    # --- late and missed runs (alerts/deadlines.py); blank: the project's ---
    finish_by = models.TimeField(null=True, blank=True,
                                 help_text="Expected to finish by this time of day (the project's time zone); "
                                           "blank: the project's.")
    max_duration = models.DurationField(null=True, blank=True, validators=[MinValueValidator(datetime.timedelta(
        seconds=1))], help_text="Late when still running this long after it started, e.g. 1:30:00; blank: the "
                                "project's.")
    start_grace = models.DurationField(null=True, blank=True, validators=[MinValueValidator(datetime.timedelta(
        seconds=1))], help_text="A scheduled run not started this long after its time is missed, e.g. 0:15:00; "
                                "blank: the project's.")

    # --- retries ---
    retries = models.PositiveSmallIntegerField(null=True, blank=True, validators=bounded(0, 100))
    retry_delay_seconds = models.PositiveIntegerField(null=True, blank=True,
                                                      validators=bounded(0, MAX_RETRY_DELAY_SECONDS))
    retry_backoff = models.BooleanField(null=True, blank=True, help_text="Double the delay after every attempt.")
    retry_max_delay_seconds = models.PositiveIntegerField(null=True, blank=True,
                                                          validators=bounded(0, MAX_RETRY_DELAY_SECONDS))

    # --- file hub ---
    publish_to_users = models.ManyToManyField("auth.User", blank=True, related_name="published_tasks")
    publish_to_groups = models.ManyToManyField("auth.Group", blank=True, related_name="published_tasks")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TaskQuerySet.as_manager()
    # Change history (who, when, what) of the task and, below, of its destinations, conditions, emails and
    # dependencies; audit/ shows it on the task page and in the admin.
    history = HistoricalRecords(app="audit", m2m_fields=["publish_to_users", "publish_to_groups"])

    class Meta:
        ordering = ["project__name", "run_rank", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="task_name_per_project")]

    def __str__(self):
        return self.name

    @property
    def source(self):
        """The task's source kind: its class in tasks/source_kinds/ (label, fields, producer, summary)."""
        return source_kinds.kind_of(self.source_kind)

    @staticmethod
    def code_of(values):
        """What in these task values is code that runs on the portal's server or a shell: the `code_fields`
        of a source kind that declares any (a script or SSH command, typed in or where it is loaded from, and
        the server a command runs on) and the processing script. Writing or changing any of it needs the
        "may write code" permission (projects.access); an empty tuple means no code."""
        get = values.get if isinstance(values, dict) else (lambda name: getattr(values, name, None))
        code = ()
        kind = source_kinds.get(get("source_kind"))
        if kind is not None and kind.is_code:
            code += (get("source_kind"),) + tuple(get(name) for name in kind.code_fields)
        if get("processing_location"):
            code += (get("processing_location"), get("processing_script"), get("processing_connection"),
                     get("processing_path"), get("processing_entry"))
        return tuple(getattr(item, "pk", item) for item in code)

    def connections_outside_organization(self):
        """Connections this task (or its destinations, conditions and emails) uses that belong to another
        organization than its project: each would hand one organization's data or credentials to another."""
        used = {self.source_connection_id, self.text_connection_id, self.processing_connection_id, self.gpg_key_id,
                self.destination_connection_id, self.error_smtp_connection_id, self.warning_smtp_connection_id,
                self.success_smtp_connection_id}
        used |= set(self.destinations.values_list("connection_id", flat=True))
        used |= set(self.conditions.values_list("connection_id", flat=True))
        used |= set(self.notifications.values_list("smtp_connection_id", flat=True))
        used.discard(None)
        return Connection.objects.filter(pk__in=used).exclude(organization_id=self.project.organization_id)

    def get_absolute_url(self):
        return reverse("tasks:detail", args=[self.pk])

    # --- settings shared across levels (tasks/inheritance.py) ---

    def effective_settings(self):
        """{name: inheritance.Effective}: each shared setting's value in effect, its level and where it is set.
        Read once per task object (resolve_many fills it for a whole list with one query)."""
        if getattr(self, "_effective", None) is None:
            inheritance.resolve_many([self])
        return self._effective

    def effective(self, name):
        return self.effective_settings()[name].value

    def with_effective_settings(self):
        """This task with every shared setting's field holding its effective value, for a run or a preview:
        the stages read `task.retries`, `task.encoding` as before. Such a task refuses to be saved, so an
        inherited value never becomes the task's own by accident."""
        if not getattr(self, "_settings_applied", False):
            effective = self.effective_settings()
            self.own_settings = {name: getattr(self, item.setting.model_field.attname)
                                 for name, item in effective.items()}
            for name, item in effective.items():
                setattr(self, item.setting.model_field.name, item.value)
            self._settings_applied = True
        return self

    def destinations_in_effect(self):
        """The task's own destinations; without any, the default destination its levels set (a connection and
        a folder at the task, project or organization), unsaved; else none."""
        destinations = list(self.destinations.select_related("connection")) if self.pk else []
        if destinations:
            return destinations
        connection = self.effective("destination_connection")
        if connection is None:
            return []
        return [Destination(task=self, connection=connection, folder=self.effective("destination_folder") or "")]

    @property
    def retries_in_effect(self):
        return self.effective("retries")

    def forget_effective_settings(self):
        self._effective = None

    def use_inherited(self, name):
        """Drop the task's own value of a shared setting, so the project's, organization's or portal's applies."""
        setting = inheritance.get(name)
        setattr(self, setting.model_field.attname, None)
        self.save(update_fields=[setting.model_field.name, "updated_at"])
        self.forget_effective_settings()

    def save(self, *args, **kwargs):
        if getattr(self, "_settings_applied", False):
            raise RuntimeError("This task holds its effective (inherited) settings; save a fresh copy instead.")
        self._effective = None
        super().save(*args, **kwargs)

    @transaction.atomic
    def duplicate(self, project=None, keep_name=False):
        """A disabled copy named "... (copy)" with its destinations, parameters, conditions and notifications,
        in `project` (default: the same one); with `keep_name` (a duplicated project's tasks, see
        Project.duplicate) under its own name. It is a task template: settings the task inherits stay inherited
        (NULL), so the copy takes them from its own project and organization.

        Secrets live on connections, which the copy shares, so nothing secret is copied or shown.
        """
        project_id = getattr(project, "pk", None) or self.project_id
        related = {
            "destinations": list(self.destinations.all()),
            "parameters": list(self.parameters.all()),
            "conditions": list(self.conditions.all()),
            "notifications": list(self.notifications.all()),
        }
        users, groups = list(self.publish_to_users.all()), list(self.publish_to_groups.all())
        name, number = (self.name, 2) if keep_name else (f"{self.name} (copy)", 2)
        while Task.objects.filter(project=project_id, name=name).exists():
            name, number = f"{self.name} (copy {number})", number + 1
        copy = Task.objects.get(pk=self.pk)
        copy.pk = copy.id = None
        copy.project_id = project_id
        copy.name, copy.enabled = name, False
        copy._state.adding = True
        copy.save()
        copy.publish_to_users.set(users)
        copy.publish_to_groups.set(groups)
        for items in related.values():
            for item in items:
                item.pk = item.id = None
                item.task = copy
                item._state.adding = True
                item.save()
        return copy


class Destination(models.Model):
    """One place a task's output is delivered to; a task may have any number."""

    class Marker(models.TextChoices):
        NONE = "", "No marker file"
        PER_FILE = "per_file", "<file>.done beside each file"
        NAMED = "named", "One named file after all files"

    class AckFailure(models.TextChoices):
        WARNING = "warning", "Warning"
        FAILURE = "failure", "Failure"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="destinations")
    connection = models.ForeignKey("connections.Connection", on_delete=models.PROTECT, related_name="destinations")
    folder = models.CharField(max_length=1024, blank=True, help_text="Folder under the connection's base folder.")
    overwrite = models.BooleanField(default=True)
    skip_empty = models.BooleanField(default=False, help_text="Don't send empty files (no data rows / zero bytes).")
    # Proof for the receiver that everything has landed (runs/delivery_proof.py).
    marker = models.CharField(max_length=10, choices=Marker.choices, blank=True, default=Marker.NONE)
    marker_name = models.CharField(max_length=255, blank=True,
                                   help_text="The marker file's name when it is one named file. Parameters allowed.")
    # The receiver's answer: an acknowledgement (or a refusal) file per delivered file.
    ack_pattern = models.CharField(max_length=255, blank=True,
                                   help_text="The receiver's acknowledgement file, {name} standing for each "
                                             "delivered file, e.g. {name}.ack. Empty: no acknowledgement expected.")
    nack_pattern = models.CharField(max_length=255, blank=True,
                                    help_text="The receiver's refusal file, e.g. {name}.nack.")
    ack_wait_minutes = models.PositiveIntegerField(default=30, validators=bounded(0, MAX_ACK_WAIT_MINUTES),
                                                   help_text="How long the run waits for the answer (0: look once).")
    ack_failure = models.CharField(max_length=10, choices=AckFailure.choices, default=AckFailure.WARNING,
                                   help_text="What a refusal or no answer in time makes of the run.")
    position = models.PositiveIntegerField(default=0)
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return f"{self.connection.name}:{self.folder or '/'}"

    def clean(self):
        super().clean()
        errors = self.proof_setting_errors(vars(self))
        if errors:
            raise ValidationError(errors)

    @classmethod
    def proof_setting_errors(cls, values):
        """{field: message} for marker and acknowledgement settings that cannot work; the form and the API both
        ask here."""
        errors = {}
        if values.get("marker") == cls.Marker.NAMED and not (values.get("marker_name") or "").strip():
            errors["marker_name"] = "Name the marker file, or choose another kind of marker."
        for field in ("ack_pattern", "nack_pattern"):
            pattern = values.get(field) or ""
            if pattern and "{name}" not in pattern:
                errors[field] = "Put {name} where the delivered file's name goes, e.g. {name}.ack."
        if values.get("nack_pattern") and not values.get("ack_pattern"):
            errors.setdefault("ack_pattern", "A refusal file needs an acknowledgement file to wait for too.")
        return errors


class Dependency(models.Model):
    """Run `downstream` after `upstream` ends in the given way (also across projects)."""

    class On(models.TextChoices):
        SUCCESS = "success", "On success"
        FAILURE = "failure", "On failure"
        COMPLETION = "completion", "On completion"

    upstream = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="downstream_links")
    downstream = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="upstream_links")
    on = models.CharField(max_length=10, choices=On.choices, default=On.SUCCESS)
    history = HistoricalRecords(app="audit")

    class Meta:
        verbose_name_plural = "dependencies"
        constraints = [models.UniqueConstraint(fields=["upstream", "downstream"], name="one_link_per_pair")]

    def __str__(self):
        return f"{self.upstream} -> {self.downstream} ({self.on})"


class Condition(models.Model):
    """All of a task's conditions must hold for its output to be delivered; else the run ends as a warning."""

    class Kind(models.TextChoices):
        QUERY_HAS_ROWS = "query_rows", "Condition query returns at least one row"
        QUERY_VALUE = "query_value", "Condition query's first value compares to"
        MIN_ROWS = "min_rows", "Output has at least N rows"
        MAX_ROWS = "max_rows", "Output has at most N rows"

    class Operator(models.TextChoices):
        EQ = "=", "="
        NE = "<>", "<>"
        LT = "<", "<"
        LE = "<=", "<="
        GT = ">", ">"
        GE = ">=", ">="

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="conditions")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    connection = models.ForeignKey("connections.Connection", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="condition_tasks")
    query = models.TextField(blank=True)
    operator = models.CharField(max_length=2, choices=Operator.choices, blank=True)
    value = models.CharField(max_length=255, blank=True, help_text="A number, or a parameter name in braces.")
    position = models.PositiveIntegerField(default=0)
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.get_kind_display()


class Notification(models.Model):
    class Event(models.TextChoices):
        SUCCESS = "success", "On success"
        WARNING = "warning", "On warning"
        ERROR = "error", "On error"
        LATE = "late", "When late or missed"

    class Output(models.TextChoices):
        NONE = "none", "Don't include the output"
        ATTACH = "attach", "Attach the output files"
        EMBED = "embed", "Embed a small CSV as a table"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10, choices=Event.choices)
    smtp_connection = models.ForeignKey("connections.Connection", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="notification_tasks")
    recipients = models.TextField(help_text="Addresses, one per line or comma-separated; phone gateways get SMS text.")
    cc = models.TextField(blank=True)
    bcc = models.TextField(blank=True)
    subject = models.CharField(max_length=255, blank=True, help_text="Parameters allowed.")
    message = models.TextField(blank=True, help_text="Parameters allowed.")
    include_output = models.CharField(max_length=10, choices=Output.choices, default=Output.NONE)
    max_attachment_bytes = models.PositiveIntegerField(default=10 * 1024 * 1024,
                                                       validators=bounded(0, MAX_ATTACHMENT_BYTES))
    attach_manifest = models.BooleanField(default=False,
                                          help_text="Attach the run's delivery manifest (files, sizes, checksums, "
                                                    "where each landed) as JSON.")
    attach_log = models.BooleanField(default=False, help_text="Attach the run's log as a text file.")
    skip_when_empty = models.BooleanField("don't send when the output is empty", default=False,
                                          help_text="Nothing is sent when the run wrote no data rows.")
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["event", "id"]

    def __str__(self):
        return f"{self.get_event_display()} email"
