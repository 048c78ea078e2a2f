import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Q
from simple_history.models import HistoricalRecords

from connections.secrets import EncryptedTextField
from projects.triggers import MAX_INTERVAL_SECONDS, MAX_JITTER_SECONDS


class Role(models.TextChoices):
    """A member's role in an organization; each includes the rights of the ones before it."""

    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"


# Roles from the least to the most; `at_least(role)` is every role in this list from `role` on.
ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.ADMIN]


def at_least(role):
    return ROLE_ORDER[ROLE_ORDER.index(role):]


class OrganizationQuerySet(models.QuerySet):
    def where_role(self, user, role=Role.VIEWER):
        """The organizations in which `user` holds `role` or a higher one (all of them for a superuser)."""
        if user.is_superuser:
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(pk__in=Membership.objects.filter(user=user, role__in=at_least(role))
                           .values("organization_id"))


class Organization(models.Model):
    """Everything (connections, projects) belongs to one organization; its members' roles say who may do what."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="organizations",
                                     through="projects.Membership")
    # Shared task settings set for the whole organization (tasks/inheritance.py): name -> value; a missing
    # name inherits the portal's default. Changes enter the organization's history.
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Change history (who, when, what): audit/ shows it; members are recorded as a set of user ids per change.
    history = HistoricalRecords(app="audit")  # members and roles: Membership's own history

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def set_member(self, user, role, can_write_code=False):
        """Add `user` or change their role; the code permission goes only with the editor or admin role.
        Refuses to leave the organization without an admin."""
        if role not in Role.values:
            raise ValidationError(f"{role!r} is not a role.")
        membership = self.memberships.filter(user=user).first() or Membership(organization=self, user=user)
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            self._keep_an_admin(user)
        if role == Role.VIEWER and self.projects.filter(owner=user).exists():
            raise ValidationError(f"{user} owns projects of {self}, so stays an editor: hand them to someone "
                                  f"else first.")
        membership.role = role
        membership.can_write_code = bool(can_write_code) and role != Role.VIEWER
        membership.save()
        return membership

    def remove_member(self, user):
        membership = self.memberships.filter(user=user).first()
        if membership is None:
            return False
        if membership.role == Role.ADMIN:
            self._keep_an_admin(user)
        if self.projects.filter(owner=user).exists():
            raise ValidationError(f"{user} owns projects of {self}: hand them to someone else first.")
        membership.delete()
        return True

    def _keep_an_admin(self, leaving):
        if not self.memberships.filter(role=Role.ADMIN).exclude(user=leaving).exists():
            raise ValidationError(f"{leaving} is the last admin of {self}: make someone else an admin first.")


class Membership(models.Model):
    """A user's role in one organization, and whether they may write code that runs on the portal's server."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER,
                            help_text="Viewer: sees tasks, runs, logs and files. Editor: also creates, changes and "
                                      "runs projects and tasks. Admin: also manages connections and members.")
    can_write_code = models.BooleanField(
        "may write code", default=False,
        help_text="May write what runs on the portal's server: Python and processing scripts, SSH commands, "
                  "SQLite and local-folder connections. Only with the editor or admin role.")
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_user")]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.get_role_display()})"


class ProjectQuerySet(models.QuerySet):
    # Role tests are subqueries, not joins, so no row is repeated and no DISTINCT is needed.
    def visible_to(self, user):
        return self.filter(organization__in=Organization.objects.where_role(user).values("pk"))

    def editable_by(self, user):
        """Projects of the organizations where `user` is an editor or admin, and those whose editor groups
        hold them while they are a member of the project's organization."""
        if user.is_superuser:
            return self
        if not user.is_authenticated:
            return self.none()
        by_role = Q(organization__in=Organization.objects.where_role(user, Role.EDITOR).values("pk"))
        by_group = Q(organization__in=Organization.objects.where_role(user).values("pk"),
                     pk__in=Project.editor_groups.through.objects.filter(
                         group__in=user.groups.values("pk")).values("project_id"))
        return self.filter(by_role | by_group)


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
    max_parallel = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1), MaxValueValidator(100)],
                                               help_text="Parallel mode: most tasks running at once.")
    # Shared task settings set for the project's tasks (tasks/inheritance.py): name -> value; a missing name
    # inherits the organization's. Changes enter the project's history.
    settings = models.JSONField(default=dict, blank=True)
    # Late and missed runs (alerts/deadlines.py): what a task leaves blank comes from here.
    finish_by = models.TimeField(null=True, blank=True,
                                 help_text="Runs are expected to finish by this time of day (the project's time "
                                           "zone); blank: no such deadline.")
    max_duration = models.DurationField(null=True, blank=True, validators=[MinValueValidator(datetime.timedelta(
        seconds=1))], help_text="A run still going this long after it started is late, e.g. 1:30:00; blank: no "
                                "limit.")
    start_grace = models.DurationField(
        null=True, blank=True, default=datetime.timedelta(minutes=15),
        validators=[MinValueValidator(datetime.timedelta(seconds=1))],
        help_text="A scheduled run not started this long after its time is missed, e.g. 0:15:00; blank: no "
                  "missed-start alerts.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()
    history = HistoricalRecords(app="audit", m2m_fields=["editor_groups"])

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="project_name_per_org")]

    def __str__(self):
        return self.name

    @transaction.atomic
    def duplicate(self):
        """A disabled copy named "... (copy)" with its triggers, parameters, editor groups and tasks (each copied by
        Task.duplicate, under its own name, disabled), and the dependencies between its own tasks. The owner stays:
        ownership moves only by its owner or an admin. Nothing starts until someone enables the copy."""
        name, number = f"{self.name} (copy)", 2
        while Project.objects.filter(organization=self.organization_id, name=name).exists():
            name, number = f"{self.name} (copy {number})", number + 1
        copy = Project.objects.create(
            organization_id=self.organization_id, name=name, description=self.description, owner_id=self.owner_id,
            enabled=False, mode=self.mode, time_zone=self.time_zone, missed_runs=self.missed_runs,
            max_parallel=self.max_parallel)
        copy.editor_groups.set(self.editor_groups.all())
        for item in [*self.parameters.all(), *self.triggers.all()]:
            item.pk = item.id = None
            item.project = copy
            item._state.adding = True
            if isinstance(item, Trigger):
                item.next_run_at = item.last_fired_at = None
            item.save()  # a trigger is armed by its signal: harmless, a disabled project starts nothing
        copies = {task.pk: task.duplicate(project=copy, keep_name=True) for task in self.tasks.all()}
        for task in self.tasks.prefetch_related("upstream_links"):
            for link in task.upstream_links.all():
                if link.upstream_id in copies:  # a dependency on another project's task is not copied
                    copies[task.pk].upstream_links.create(upstream=copies[link.upstream_id], on=link.on)
        return copy


class Parameter(models.Model):
    """A key/value used in queries, file names, scripts, commands and emails.

    Organization parameters apply to all its tasks, a project's override them for its tasks, and a task
    parameter with the same key overrides both. Values are encrypted at rest; `sensitive` ones are also masked
    on pages and in logs.
    """

    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="parameters")
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
            models.UniqueConstraint(fields=["organization", "key"], name="parameter_key_per_organization",
                                    condition=Q(organization__isnull=False)),
            # Exactly one owner: an organization, a project or a task.
            models.CheckConstraint(
                condition=(Q(organization__isnull=False, project__isnull=True, task__isnull=True)
                           | Q(organization__isnull=True, project__isnull=False, task__isnull=True)
                           | Q(organization__isnull=True, project__isnull=True, task__isnull=False)),
                name="parameter_belongs_to_one_level"),
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
    jitter_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_JITTER_SECONDS)],
        help_text="Spread the start by up to this many seconds (at most a day).")
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
    # The unit-aware limit (every x unit <= 100 years) is checked by triggers.validate().
    every = models.PositiveIntegerField(null=True, blank=True,
                                        validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_SECONDS)])
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
    max_instances = models.PositiveIntegerField(default=1,
                                                validators=[MinValueValidator(1), MaxValueValidator(100)])
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


class LeaderLease(models.Model):
    """Who leads the portal's housekeeping (projects/housekeeping.py) across every host: one row per role, taken
    by a conditional UPDATE once `expires_at` has passed. `token` grows on every takeover, so a leader that lost
    the row (paused, cut off) finds its token stale and does nothing. Rows "worker:<host>:<pid>" are the
    workers' heartbeats (/health/, /metrics)."""

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    token = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField()
    renewed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name}: {self.holder or 'nobody'}"
