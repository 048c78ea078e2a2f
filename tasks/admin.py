from django.contrib import admin, messages

from runs.models import Run
from tasks.models import Destination, Task


class DestinationInline(admin.TabularInline):
    model = Destination
    extra = 0
    autocomplete_fields = ("connection",)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "run_rank", "enabled", "source_kind", "source_connection")
    list_filter = ("enabled", "source_kind", "project__organization", "project")
    search_fields = ("name", "project__name")
    list_select_related = ("project", "source_connection")
    autocomplete_fields = ("source_connection",)
    inlines = [DestinationInline]
    actions = ["run_now", "enable", "disable"]

    @admin.action(description="Run the selected tasks now")
    def run_now(self, request, queryset):
        from runs.execution import enqueue_run

        for task in queryset:
            run = enqueue_run(task, Run.Trigger.MANUAL, request.user)
            self.message_user(request, f"{task.name}: run {run.pk} queued", messages.SUCCESS)

    @admin.action(description="Enable the selected tasks")
    def enable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=True)} tasks enabled")

    @admin.action(description="Disable the selected tasks")
    def disable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=False)} tasks disabled")
