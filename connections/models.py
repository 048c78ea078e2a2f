from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from connections import maintenance
from connections.protocols import registry
from connections.secrets import EncryptedJSONField
from projects.models import Organization, Role

ADDRESS_COLUMNS = ("host", "port", "username", "database", "path")


def validate_kind(value):
    """A kind must be a registered protocol. Checked in `Connection.clean`, not as a field validator or choices,
    so that the registry alone knows the kinds and adding one needs no migration."""
    if registry.get(value) is None:
        raise ValidationError(f"{value!r} is not a known connection kind", code="unknown_kind")


class ConnectionQuerySet(models.QuerySet):
    def with_capability(self, *capabilities):
        """Connections whose protocol has at least one of `capabilities` (connections.protocols.Capability)."""
        kinds = {kind for capability in capabilities for kind in registry.kinds_with(capability)}
        return self.filter(kind__in=sorted(kinds))

    def visible_to(self, user):
        """Connections of the user's organizations: every member sees them and editors use them in tasks."""
        return self.filter(organization__in=Organization.objects.where_role(user).values("pk"))

    def manageable_by(self, user):
        """Connections the user may create, change and delete: those of organizations they administer."""
        return self.filter(organization__in=Organization.objects.where_role(user, Role.ADMIN).values("pk"))


class Connection(models.Model):
    """One endpoint an organization defines once and tasks reuse.

    Common addressing lives in columns; what only one kind needs lives in `options`; passwords, keys and
    tokens live in `secrets`, encrypted. The protocol class for `kind` says which of these it uses.
    """

    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="connections")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)  # a registered protocol: see clean() (no choices, so no migration)
    description = models.TextField(blank=True)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True,
                                       validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(max_length=255, blank=True)
    database = models.CharField(max_length=255, blank=True, help_text="Database name, share, or project.")
    path = models.CharField(max_length=1024, blank=True, help_text="Base folder, file path or URL.")
    options = models.JSONField(default=dict, blank=True)
    secrets = EncryptedJSONField(blank=True, default="")
    host_key = models.TextField(
        blank=True, help_text="SSH host key pinned at the first successful connection; clear it to accept a new key."
    )
    max_runs = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)], verbose_name="Run slots",
        help_text="At most this many runs use this connection at once; others wait queued. Blank: no limit.")
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.TextField(blank=True)
    # Credential expiry (connections/expiry.py): the date a person enters for the password or key, and what the
    # last successful test read by itself (TLS certificates, GPG keys) as [{"what", "expires_on"}].
    secret_expires_on = models.DateField(null=True, blank=True,
                                         help_text="When the password or key stops working (e.g. a vendor's 90-day "
                                                   "password): the organization's admins are reminded before.")
    found_expiries = models.JSONField(default=list, blank=True)
    expiry_reminders = models.JSONField(default=dict, blank=True,
                                        help_text="Reminders sent: {what|date: [days before, ...]}.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectionQuerySet.as_manager()
    # The historical copy of `secrets` is the same encrypted field (ciphertext at rest); audit/changes.py shows
    # only which secret names changed, never a value.
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="connection_name_per_org")]

    def __str__(self):
        return f"{self.name} ({self.kind_label})"

    def clean(self):
        super().clean()
        try:
            validate_kind(self.kind)
        except ValidationError as exc:
            raise ValidationError({"kind": exc.messages}) from None

    @property
    def protocol(self):
        """The protocol class of `kind` (connections.protocols.base.Connector), or None for an unknown kind."""
        return registry.get(self.kind)

    def has(self, capability):
        """True when the connection's kind has `capability` (False for an unknown kind)."""
        return self.protocol is not None and self.protocol.has(capability)

    @property
    def kind_label(self):
        cls = self.protocol
        return cls.label if cls else self.kind

    def connector(self):
        return registry.connector_for(self)

    def secret(self, name):
        return (self.secrets or {}).get(name, "")

    def secret_values(self):
        return [value for value in (self.secrets or {}).values() if value]

    def addressing_fields(self, kind=None):
        """(columns, option keys) that say where this connection points for `kind` (default: its own).

        Stored secrets belong to that address: when one of these changes, the connection form drops them
        unless new ones are entered in the same save. Each protocol declares its harmless options; see
        `Connector.addressing`.
        """
        protocol = registry.get(kind or self.kind)
        if protocol is None:
            return ("kind",) + ADDRESS_COLUMNS, ()
        return protocol.addressing()

    def users(self):
        """Tasks that use this connection in any role, so a delete can be refused with their names.

        Every foreign key to Connection is followed: on Task itself (source, text, processing, GPG key) or on
        a model that belongs to a task (destinations, conditions, notifications), so a new one is covered.
        """
        # Tasks are a layer above connections (tasks.models imports this module): reach them through the reverse
        # relation their foreign key declares, not by importing them.
        Task = type(self)._meta.get_field("source_tasks").related_model
        uses = models.Q(pk__in=[])
        for relation in type(self)._meta.related_objects:
            model, field = relation.related_model, relation.field
            if model is Task:
                uses |= models.Q(**{field.name: self})
                continue
            to_task = next((f for f in model._meta.concrete_fields if f.is_relation and f.related_model is Task), None)
            if to_task is not None:  # none today that is not part of a task; its own PROTECT guards the delete
                uses |= models.Q(pk__in=model.objects.filter(**{field.name: self}).values(to_task.attname))
        return Task.objects.filter(uses).select_related("project").order_by("project__name", "name")


class ConnectionTest(models.Model):
    """One test of a connection (the Test button, the nightly job): its history is shown on the connection page."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tests")
    tested_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    message = models.TextField(blank=True)
    by = models.CharField(max_length=150, blank=True, help_text="Who asked; empty for the nightly test.")

    class Meta:
        ordering = ["-tested_at", "-id"]
        indexes = [models.Index(fields=["connection", "-tested_at"], name="connection_test_latest")]

    def __str__(self):
        return f"{self.connection} {'ok' if self.ok else 'failed'} at {self.tested_at:%Y-%m-%d %H:%M}"


class MaintenanceWindowQuerySet(models.QuerySet):
    def current_or_coming(self, at):
        """Weekly windows, and one-off windows not over at `at` (the only ones that can hold a run now or later)."""
        return self.filter(models.Q(kind=MaintenanceWindow.Kind.WEEKLY) | models.Q(ends_at__gt=at))


class MaintenanceWindow(models.Model):
    """A time when a connection's server is in maintenance: a run that would use the connection then waits queued
    and starts when the window ends (runs/windows.py holds it at the claim).

    Weekly: on each of `days` (0 Monday ... 6 Sunday) from `start_time` to `end_time`, in `time_zone`; an end at
    or before the start ends on the next day (22:00-02:00 crosses midnight; `days` names the day it starts).
    One-off: from `starts_at` to `ends_at` (stored as instants; the form reads them in `time_zone`).
    The decision is connections/maintenance.py's.
    """

    class Kind(models.TextChoices):
        WEEKLY = "weekly", "Every week"
        ONCE = "once", "Once"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="maintenance_windows")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEEKLY)
    days = models.CharField(max_length=7, blank=True,
                            help_text="Weekly: the days the window starts, as digits 0 (Monday) to 6 (Sunday).")
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True, help_text="At or before the start: the next day.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC",
                                 help_text="The zone the times are in, e.g. Europe/Berlin (the server's zone).")
    note = models.CharField(max_length=200, blank=True)

    objects = MaintenanceWindowQuerySet.as_manager()
    history = HistoricalRecords(app="audit")

    class Meta:
        ordering = ["connection", "kind", "starts_at", "start_time", "id"]

    def __str__(self):
        return maintenance.describe(self)

    def clean(self):
        super().clean()
        maintenance.validate(self)

    def closed_until(self, at):
        """The end of this window when `at` lies in it, else None."""
        return maintenance.window_end(self, at)
