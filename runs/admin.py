from django.contrib import admin, messages

from etl_portal.admin_site import SystemWritten
from projects.admin_access import OrganizationScoped, ParentScopedInline
from runs import backfill
from runs.models import Backfill, DryRun, FileDownload, Run, RunFile, RunLog
from runs.orchestration import Refused

RUN_PATH = "run__task__project__organization"


class RunLogInline(ParentScopedInline, admin.TabularInline):
    model = RunLog
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "level", "message")


class MaskedFileFields:
    """A file's name, stored path and delivery paths as pages show them: secrets masked (runs/masking.py)."""

    @admin.display(description="name")
    def display_name(self, run_file):
        return run_file.display_name

    @admin.display(description="stored path")
    def shown_stored_path(self, run_file):
        return run_file.shown_stored_path

    @admin.display(description="deliveries")
    def shown_deliveries(self, run_file):
        return "; ".join(f"{record.get('connection')}: {record.get('path')}" for record in run_file.shown_deliveries)


class RunFileInline(MaskedFileFields, ParentScopedInline, admin.TabularInline):
    model = RunFile
    extra = 0
    can_delete = False
    fields = readonly_fields = ("display_name", "size", "md5", "shown_stored_path", "shown_deliveries",
                                "created_at", "purged_at")


@admin.register(Run)
class RunAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = "task__project__organization"
    list_display = ("id", "task", "status", "trigger", "backfill", "attempt", "priority", "scheduled_for",
                    "started_at", "finished_at", "rows")
    list_filter = ("status", "trigger", ("backfill", admin.EmptyFieldListFilter), "created_at", "task__project")
    date_hierarchy = "created_at"
    search_fields = ("task__name", "error")
    list_select_related = ("task",)
    raw_id_fields = ("task", "first_attempt", "requested_by")
    readonly_fields = ("created_at", "worker", "lease_expires_at", "query_text", "error", "backfill", "columns",
                       "drift")
    inlines = [RunFileInline, RunLogInline]


@admin.register(Backfill)
class BackfillAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    """Backfill batches, read-only (they are started from the task and project pages or `manage.py backfill`);
    the action cancels the selected ones as their page's button does."""

    organization_path = "project__organization"
    list_display = ("id", "project", "task", "first_date", "last_date", "max_dates", "requested_by", "created_at",
                    "cancelled_at")
    list_filter = ("created_at", ("cancelled_at", admin.EmptyFieldListFilter), "project")
    search_fields = ("project__name", "task__name")
    list_select_related = ("project", "task", "requested_by")
    fields = readonly_fields = ("project", "task", "first_date", "last_date", "max_dates", "requested_by",
                                "created_at", "cancelled_at", "cancelled_by")
    actions = ["cancel_backfills"]

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected backfills (queued runs cancelled, running ones stopped)")
    def cancel_backfills(self, request, queryset):
        for batch in self.allowed(request, queryset):
            try:
                self.message_user(request, backfill.cancel(batch, request.user))
            except Refused as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(RunFile)
class RunFileAdmin(SystemWritten, MaskedFileFields, OrganizationScoped, admin.ModelAdmin):
    organization_path = RUN_PATH
    list_display = ("display_name", "run", "size", "md5", "created_at", "purged_at")
    list_filter = ("run__status", "created_at", ("purged_at", admin.EmptyFieldListFilter))
    date_hierarchy = "created_at"
    search_fields = ("name", "md5", "run__task__name")
    raw_id_fields = ("run",)
    fields = readonly_fields = ("run", "display_name", "size", "md5", "sha256", "shown_stored_path",
                                "shown_deliveries", "created_at", "purged_at")


@admin.register(RunLog)
class RunLogAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = RUN_PATH
    list_display = ("run", "created_at", "level", "message")
    list_filter = ("level", "created_at")
    search_fields = ("message", "run__task__name")
    raw_id_fields = ("run",)


@admin.register(FileDownload)
class FileDownloadAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    # Part of its run like the files and log lines: an editor who may delete the task (and with it this record,
    # as the task page does) may delete it here.
    organization_path = "run_file__" + RUN_PATH
    list_display = ("run_file", "user", "downloaded_at")
    list_filter = ("downloaded_at",)
    search_fields = ("run_file__name", "user__username")
    raw_id_fields = ("run_file",)


@admin.register(DryRun)
class DryRunAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = "task__project__organization"
    list_display = ("id", "task", "status", "scheduled_for", "requested_by", "created_at", "finished_at")
    list_filter = ("status", "created_at")
    search_fields = ("task__name", "error")
    list_select_related = ("task", "requested_by")
    raw_id_fields = ("task", "requested_by")
    readonly_fields = ("status", "report", "error", "created_at", "finished_at")
