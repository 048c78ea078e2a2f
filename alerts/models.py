"""Late and missed runs, and the channels that tell people about runs: webhooks, and an outbox of what to send.

- `Webhook`: a task's, a project's or an organization's HTTP endpoint (generic JSON, Slack, Microsoft Teams)
  with the events it wants and an optional HMAC-SHA256 signing secret (encrypted at rest, never shown again; the
  webhook form drops it when the URL changes unless it is entered again, so it never goes where nobody re-entered
  it for). Channels add up: a run's event goes to its task's, project's and organization's webhooks.
- `Alert`: a run late past its deadline, or a scheduled start that did not begin within its grace period; raised
  once (the unique keys below), cleared when its run ends (alerts/deadlines.py).
- `Delivery`: one message to one channel (a webhook, or an email of the task for alerts) for one event, sent by
  the housekeeping leader outside the run and retried with back-off (alerts/outbox.py); `DeliveryAttempt`: each
  try, with the HTTP status or the error, shown on the run's page. A channel's failure never touches a run.
"""
import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from connections.secrets import EncryptedTextField


class Event(models.TextChoices):
    SUCCESS = "success", "Success"
    WARNING = "warning", "Warning"
    FAILURE = "failure", "Failure"
    LATE = "late", "Late"
    MISSED = "missed", "Missed start"


# A run's outcome -> the event it sends (a cancelled or skipped run sends nothing).
EVENT_OF_STATUS = {"succeeded": Event.SUCCESS, "warning": Event.WARNING, "failed": Event.FAILURE}


def shown_url(url):
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else "…"


class WebhookQuerySet(models.QuerySet):
    def visible_to(self, user):
        from projects.models import Organization, Project
        from tasks.models import Task

        organizations = Organization.objects.where_role(user).values("pk")
        projects = Project.objects.visible_to(user).values("pk")
        return self.filter(Q(organization__in=organizations) | Q(project__in=projects)
                           | Q(task__in=Task.objects.visible_to(user).values("pk")))

    def reaching(self, task):
        """The webhooks a run of `task` may go to: the task's, its project's and its organization's (each row
        belongs to one of them, so none comes twice)."""
        return self.filter(Q(task=task) | self._above(task.project))

    def reaching_project(self, project):
        """The webhooks every task of `project` may send to besides its own: the project's and its organization's."""
        return self.filter(self._above(project))

    @staticmethod
    def _above(project):
        return Q(project=project.pk) | Q(organization=project.organization_id)

    def nearest_first(self):
        """The task's first, then the project's, then the organization's (the order pages list them in)."""
        return self.order_by(models.F("task").asc(nulls_last=True), models.F("project").asc(nulls_last=True),
                             "name", "id")

    def for_event(self, task, event):
        """The enabled webhooks of `task`, of its project and of its organization that want `event`."""
        return self.reaching(task).filter(enabled=True, **{f"on_{event}": True})


class Webhook(models.Model):
    class Style(models.TextChoices):
        JSON = "json", "Generic JSON (documented body)"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams (workflow / incoming webhook)"

    # Exactly one of the three: the level it is set at. An organization's reaches every task of the organization.
    organization = models.ForeignKey("projects.Organization", null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="webhooks")
    project = models.ForeignKey("projects.Project", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="webhooks")
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    style = models.CharField(max_length=10, choices=Style.choices, default=Style.JSON)
    url = models.URLField("URL", max_length=1000, help_text="http:// or https://; the body is POSTed here.")
    secret = EncryptedTextField(blank=True, help_text="Signs each body (HMAC-SHA256, header X-ETL-Signature-256).")
    on_success = models.BooleanField(default=False)
    on_warning = models.BooleanField(default=True)
    on_failure = models.BooleanField(default=True)
    on_late = models.BooleanField(default=True)
    on_missed = models.BooleanField("on missed start", default=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WebhookQuerySet.as_manager()
    # On its task's, project's or organization's History: the secret only as "set"/"changed", the URL as its
    # scheme and host.
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["name", "id"]
        # One owner: exactly one of the three is set (a XOR of three would also pass all three).
        constraints = [models.CheckConstraint(
            condition=(Q(organization__isnull=False, project__isnull=True, task__isnull=True)
                       | Q(organization__isnull=True, project__isnull=False, task__isnull=True)
                       | Q(organization__isnull=True, project__isnull=True, task__isnull=False)),
            name="webhook_belongs_to_one_level")]

    def __str__(self):
        return self.name

    @property
    def owner(self):
        """The task, project or organization it belongs to (rights are theirs: projects/access.webhook_rights)."""
        return self.task or self.project or self.organization

    @property
    def level(self):
        """"task", "project" or "organization": where it is set."""
        return "task" if self.task_id else "project" if self.project_id else "organization"

    @property
    def page_url(self):
        """The page it is set on (and managed from): Task Details, the project page, the organization's settings."""
        from django.urls import reverse

        if self.task_id:
            return reverse("tasks:detail", args=[self.task_id])
        if self.project_id:
            return reverse("projects:detail", args=[self.project_id])
        return reverse("organizations:settings", args=[self.organization_id])

    @property
    def shown_url(self):
        """The URL as pages show it: scheme and host only. The path of a Slack or Teams URL is its credential."""
        return shown_url(self.url)

    @property
    def events(self):
        return [event for event in Event if getattr(self, f"on_{event.value}")]


class AlertQuerySet(models.QuerySet):
    def open(self):
        return self.filter(cleared_at__isnull=True)

    def visible_to(self, user):
        from tasks.models import Task

        return self.filter(task__in=Task.objects.visible_to(user).values("pk"))

    def for_dashboard(self, user, limit=50):
        """The open alerts `user` may see, newest first, with what their rows show (one query)."""
        return (self.open().visible_to(user).select_related("task__project", "run")
                .order_by("-raised_at", "-id")[:limit])


class Alert(models.Model):
    class Kind(models.TextChoices):
        LATE = "late", "Late"
        MISSED = "missed", "Missed start"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="alerts")
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    due_at = models.DateTimeField(help_text="The deadline the run crossed, or the start that did not happen.")
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField()

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["cleared_at"], name="alert_open")]
        constraints = [
            # Once: a run is late (or missed) once; a start without a run is missed once per due time.
            models.UniqueConstraint(fields=["run", "kind"], condition=Q(run__isnull=False), name="alert_once_per_run"),
            models.UniqueConstraint(fields=["task", "kind", "due_at"], condition=Q(run__isnull=True),
                                    name="alert_once_per_due_time"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.task} ({self.due_at:%Y-%m-%d %H:%M})"

    @property
    def is_open(self):
        return self.cleared_at is None

    @property
    def overdue(self):
        """How long past its due time it is now (while open) or was when it cleared."""
        return (self.cleared_at or timezone.now()) - self.due_at


class Delivery(models.Model):
    """One message for one event to one channel; sent (and retried) by alerts/outbox.py."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    event = models.CharField(max_length=10, choices=Event.choices)
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="deliveries")
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey("tasks.Notification", null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(webhook__isnull=True) ^ Q(notification__isnull=True),
                                              name="delivery_has_one_channel")]

    def __str__(self):
        return f"{self.get_event_display()} to {self.channel_name}"

    @property
    def channel_name(self):
        if self.webhook_id:
            return f"webhook {self.webhook.name}"
        recipients = ", ".join(self.notification.recipients.replace(";", ",").replace("\n", ",").split(","))
        return " ".join(recipients.split())[:80] or "email"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["id"]

    @property
    def ok(self):
        return not self.error


# Seconds before attempt 2, 3, ...: a receiver down for a minute or a restart of a chat service is ridden out;
# after the last one the delivery is failed and stays visible on the run.
RETRY_DELAYS = (10, 60, 300, 1800)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


def retry_delay(attempts):
    return datetime.timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])
