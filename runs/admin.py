from django.contrib import admin

from projects.admin_access import OrganizationScoped, ParentScopedInline
from runs.models import FileDownload, Run, RunFile, RunLog

RUN_PATH = "run__task__project__organization"


class RunLogInline(ParentScopedInline, admin.TabularInline):
    model = RunLog
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "level", "message")


class RunFileInline(ParentScopedInline, admin.TabularInline):
    model = RunFile
    extra = 0
    can_delete = False
    readonly_fields = ("name", "size", "md5", "stored_path", "deliveries", "created_at", "purged_at")


@admin.register(Run)
class RunAdmin(OrganizationScoped, admin.ModelAdmin):
    organization_path = "task__project__organization"
    list_display = ("id", "task", "status", "trigger", "attempt", "priority", "scheduled_for", "started_at",
                    "finished_at", "rows")
    list_filter = ("status", "trigger")
    date_hierarchy = "created_at"
    search_fields = ("task__name", "error")
    list_select_related = ("task",)
    raw_id_fields = ("task", "first_attempt", "requested_by")
    readonly_fields = ("created_at", "worker", "lease_expires_at", "query_text", "error")
    inlines = [RunFileInline, RunLogInline]


@admin.register(RunFile)
class RunFileAdmin(OrganizationScoped, admin.ModelAdmin):
    organization_path = RUN_PATH
    list_display = ("name", "run", "size", "md5", "created_at", "purged_at")
    search_fields = ("name", "md5")
    raw_id_fields = ("run",)


@admin.register(RunLog)
class RunLogAdmin(OrganizationScoped, admin.ModelAdmin):
    organization_path = RUN_PATH
    list_display = ("run", "created_at", "level", "message")
    list_filter = ("level",)
    raw_id_fields = ("run",)


@admin.register(FileDownload)
class FileDownloadAdmin(OrganizationScoped, admin.ModelAdmin):
    # Part of its run like the files and log lines: an editor who may delete the task (and with it this record,
    # as the task page does) may delete it here.
    organization_path = "run_file__" + RUN_PATH
    list_display = ("run_file", "user", "downloaded_at")
    search_fields = ("run_file__name", "user__username")
    raw_id_fields = ("run_file",)
