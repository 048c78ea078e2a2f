from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from connections.secrets import EncryptedTextField


class Organization(models.Model):
    """Everything (connections, projects) belongs to one organization; members see its work."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="organizations")
    created_at = models.DateTimeField(auto_now_add=True)
    # Change history (who, when, what): audit/ shows it; members are recorded as a set of user ids per change.
    history = HistoricalRecords(app="audit", m2m_fields=["members"])

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ProjectQuerySet(models.QuerySet):
    # Membership tests are subqueries, not joins, so no row is repeated and no DISTINCT is needed.
    def visible_to(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(organization__in=user.organizations.values("pk")))

    def editable_by(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(pk__in=Project.editor_groups.through.objects.filter(
            group__in=user.groups.values("pk")).values("project_id")))


class Project(models.Model):
    class Mode(models.TextChoices):
        SERIES = "series", "Series (one after another, by run rank)"
        PARALLEL = "parallel", "Parallel"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    editor_groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="editable_projects",
        help_text="Members of these groups may change and run the project's tasks.",
    )
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.SERIES)
    time_zone = models.CharField(max_length=64, default="UTC")

    class MissedRuns(models.TextChoices):
        RUN_ONCE = "run_once", "Run once now"
        SKIP = "skip", "Skip"

    missed_runs = models.CharField(max_length=10, choices=MissedRuns.choices, default=MissedRuns.RUN_ONCE,
                                   help_text="After downtime: run once now, or skip to the next time. "
                                             "Never several catch-up runs.")
    max_parallel = models.PositiveIntegerField(default=4, help_text="Parallel mode: most tasks running at once.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()
    history = HistoricalRecords(app="audit", m2m_fields=["editor_groups"])

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="project_name_per_org")]

    def __str__(self):
        return self.name


class Parameter(models.Model):
    """A key/value used in queries, file names, scripts, commands and emails.

    Project parameters apply to all its tasks; a task parameter with the same key overrides it. Values are
    encrypted at rest; `sensitive` ones are also masked on pages and in logs.
    """

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="parameters")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="parameters")
    key = models.CharField(max_length=100)
    value = EncryptedTextField(blank=True)
    sensitive = models.BooleanField(default=False)
    # The historical copy of `value` is the same encrypted field (ciphertext at rest); audit/changes.py shows a
    # sensitive value only as "changed".
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="parameter_key_per_project",
                                    condition=Q(task__isnull=True)),
            models.UniqueConstraint(fields=["task", "key"], name="parameter_key_per_task",
                                    condition=Q(project__isnull=True)),
            models.CheckConstraint(condition=Q(project__isnull=True) ^ Q(task__isnull=True),
                                   name="parameter_belongs_to_project_xor_task"),
        ]

    def __str__(self):
        return self.key

    def __repr__(self):
        return f"<Parameter {self.key}={'********' if self.sensitive else self.value!r}>"


class Trigger(models.Model):
    """When a project (or a system job) starts: cron fields, an interval, or once."""

    class Kind(models.TextChoices):
        CRON = "cron", "Cron"
        INTERVAL = "interval", "Interval"
        ONCE = "once", "One-off"

    class Unit(models.TextChoices):
        WEEKS = "weeks", "weeks"
        DAYS = "days", "days"
        HOURS = "hours", "hours"
        MINUTES = "minutes", "minutes"
        SECONDS = "seconds", "seconds"

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="triggers")
    system_job = models.ForeignKey("projects.SystemJob", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="triggers")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CRON)
    enabled = models.BooleanField(default=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text="Blank: the project's time zone.")
    jitter_seconds = models.PositiveIntegerField(default=0, help_text="Spread the start by up to this many seconds.")
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    # Cron: each blank means "every"; values use cron syntax (lists, ranges, steps).
    year = models.CharField(max_length=50, blank=True)
    month = models.CharField(max_length=50, blank=True)
    day = models.CharField(max_length=50, blank=True)
    week = models.CharField(max_length=50, blank=True, help_text="ISO week number(s)")
    day_of_week = models.CharField(max_length=50, blank=True, help_text="mon-sun or 0-6 (0 = Monday)")
    hour = models.CharField(max_length=50, blank=True)
    minute = models.CharField(max_length=50, blank=True)
    second = models.CharField(max_length=50, blank=True)
    # Interval
    every = models.PositiveIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=10, choices=Unit.choices, blank=True)
    # One-off
    run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="Computed: the next time it fires.")
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(project__isnull=True) ^ Q(system_job__isnull=True),
                                              name="trigger_belongs_to_project_xor_job")]

    def __str__(self):
        return f"{self.get_kind_display()} trigger {self.pk}"


class SystemJob(models.Model):
    """Portal housekeeping an operator schedules: a function from a fixed registry, never a free dotted path."""

    name = models.CharField(max_length=200, unique=True)
    function = models.CharField(max_length=100)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    max_instances = models.PositiveIntegerField(default=1)
    active = models.BooleanField(default=False)
    time_zone = models.CharField(max_length=64, default="UTC")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True)
    running_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
