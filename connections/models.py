from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from connections.secrets import EncryptedJSONField


class ConnectionQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Connections of the user's organizations: every member sees them and editors use them in tasks."""
        from projects.models import Organization

        return self.filter(organization__in=Organization.objects.where_role(user).values("pk"))

    def manageable_by(self, user):
        """Connections the user may create, change and delete: those of organizations they administer."""
        from projects.models import Organization, Role

        return self.filter(organization__in=Organization.objects.where_role(user, Role.ADMIN).values("pk"))


class Connection(models.Model):
    """One endpoint an organization defines once and tasks reuse.

    Common addressing lives in columns; what only one kind needs lives in `options`; passwords, keys and
    tokens live in `secrets`, encrypted. The protocol class for `kind` says which of these it uses.
    """

    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="connections")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
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
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.TextField(blank=True)
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

    @property
    def kind_label(self):
        from connections.protocols import registry

        cls = registry.get(self.kind)
        return cls.label if cls else self.kind

    def connector(self):
        from connections.protocols import registry

        return registry.connector_for(self)

    def secret(self, name):
        return (self.secrets or {}).get(name, "")

    def secret_values(self):
        return [value for value in (self.secrets or {}).values() if value]

    def users(self):
        """Tasks that use this connection, so a delete can be refused with their names."""
        from tasks.models import Task

        return Task.objects.filter(
            Q(source_connection=self) | Q(destinations__connection=self)
        ).select_related("project").distinct()
