"""The operators' view of alerts, webhook deliveries and their tries: read-only, scoped to the user's
organizations. Webhooks themselves are edited on the task, project and organization pages (their signing
secret is write-only there)."""
from django.contrib import admin

from alerts.models import Alert, Delivery, DeliveryAttempt, Webhook
from etl_portal.admin_site import SystemWritten
from projects import access
from projects.admin_access import OrganizationScoped

TASK_PATH = "task__project__organization"


class ReadOnly:
    """Every field shown, none changed here (as runs and their files); deleting follows the organization's role."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name not in self.exclude_fields]

    exclude_fields = ()


@admin.register(Webhook)
class WebhookAdmin(ReadOnly, SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = ("project__organization", TASK_PATH, "organization")
    list_display = ("name", "style", "task", "project", "organization")
    list_filter = ("style",)
    search_fields = ("name", "task__name", "project__name", "organization__name")
    exclude = exclude_fields = ("secret", "url")  # the URL's path is a credential for Slack and Teams

    def object_rights(self, request, obj):
        """The pages' rule: an organization's webhook is its admins' to delete, a task's or project's its editors'."""
        return access.webhook_rights(request.user, obj)


@admin.register(Alert)
class AlertAdmin(ReadOnly, SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = TASK_PATH
    list_display = ("kind", "task", "run", "raised_at", "cleared_at", "message")
    list_filter = ("kind", "raised_at", ("cleared_at", admin.EmptyFieldListFilter))
    search_fields = ("task__name", "message")
    list_select_related = ("task", "run")
    raw_id_fields = ("task", "run")


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly, SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = TASK_PATH
    list_display = ("id", "task", "run", "webhook", "event", "status", "created_at", "sent_at")
    list_filter = ("status", "event", "created_at")
    search_fields = ("task__name",)
    list_select_related = ("task", "run", "webhook")
    raw_id_fields = ("task", "run", "alert", "webhook", "notification")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnly, SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = "delivery__" + TASK_PATH
    list_display = ("delivery", "at", "status_code", "seconds", "error")
    list_filter = ("at",)
    raw_id_fields = ("delivery",)
