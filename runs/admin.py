from django.contrib import admin

from runs.models import FileDownload, Run, RunFile, RunLog


class RunLogInline(admin.TabularInline):
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


class RunFileInline(MaskedFileFields, admin.TabularInline):
    model = RunFile
    extra = 0
    can_delete = False
    fields = readonly_fields = ("display_name", "size", "md5", "shown_stored_path", "shown_deliveries",
                                "created_at", "purged_at")


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
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
class RunFileAdmin(MaskedFileFields, admin.ModelAdmin):
    list_display = ("display_name", "run", "size", "md5", "created_at", "purged_at")
    search_fields = ("name", "md5")
    raw_id_fields = ("run",)
    fields = readonly_fields = ("run", "display_name", "size", "md5", "shown_stored_path", "shown_deliveries",
                                "created_at", "purged_at")


@admin.register(RunLog)
class RunLogAdmin(admin.ModelAdmin):
    list_display = ("run", "created_at", "level", "message")
    list_filter = ("level",)
    raw_id_fields = ("run",)


@admin.register(FileDownload)
class FileDownloadAdmin(admin.ModelAdmin):
    list_display = ("run_file", "user", "downloaded_at")
    search_fields = ("run_file__name", "user__username")
    raw_id_fields = ("run_file",)
