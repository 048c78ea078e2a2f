from django import forms
from django.contrib import admin, messages

from audit.admin_history import SafeHistoryAdmin
from etl_portal.admin_site import ConnectionKindFilter, count_of
from projects import access
from projects.admin_access import OrganizationScoped, ParentScopedInline
from projects.models import Parameter
from runs.forms_control import DependencyForm
from runs.models import Run
from runs.queueing import enqueue_run
from tasks.forms import ParameterForm
from tasks.models import Condition, Dependency, Destination, Notification, Task

TASK_PATH = "task__project__organization"


class TaskAdminForm(forms.ModelForm):
    """Every field, with the page form's two rules: changing code needs the "may write code" permission, and a
    task uses only connections of its project's organization. `user` is set by the admin (OrganizationScoped)."""

    user = None

    class Meta:
        model = Task
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project")
        if project is None:
            return cleaned
        if self.user is not None and Task.code_of(cleaned) != Task.code_of(self.instance if self.instance.pk else {}):
            if not access.project_rights(self.user, project).can_write_code:
                self.add_error(None, access.refusal(access.CODE))
        for name in ("source_connection", "text_connection", "processing_connection", "gpg_key"):
            connection = cleaned.get(name)
            if connection and connection.organization_id != project.organization_id:
                self.add_error(name, f"{connection.name} belongs to another organization than the project.")
        return cleaned


class DestinationInline(ParentScopedInline, admin.TabularInline):
    model = Destination
    extra = 0
    autocomplete_fields = ("connection",)


class ParameterInline(ParentScopedInline, admin.TabularInline):
    model = Parameter
    form = ParameterForm
    fk_name = "task"
    fields = ("key", "value", "sensitive")
    extra = 0


class ConditionInline(ParentScopedInline, admin.TabularInline):
    model = Condition
    extra = 0


class NotificationInline(ParentScopedInline, admin.StackedInline):
    model = Notification
    extra = 0


class UpstreamInline(ParentScopedInline, admin.TabularInline):
    model = Dependency
    form = DependencyForm
    fk_name = "downstream"
    extra = 0
    verbose_name = "runs after"
    verbose_name_plural = "runs after (dependencies)"
    autocomplete_fields = ("upstream",)


@admin.register(Task)
class TaskAdmin(OrganizationScoped, SafeHistoryAdmin):
    organization_path = "project__organization"
    form = TaskAdminForm
    list_display = ("name", "project", "run_rank", "enabled", "source_kind", "source_connection", "priority",
                    "retries")
    list_filter = ("enabled", "source_kind", "file_format", "project__organization", "project")
    search_fields = ("name", "project__name")
    list_select_related = ("project", "source_connection")
    autocomplete_fields = ("source_connection", "text_connection", "processing_connection", "gpg_key")
    filter_horizontal = ("publish_to_users", "publish_to_groups")
    inlines = [DestinationInline, ParameterInline, ConditionInline, NotificationInline, UpstreamInline]
    actions = ["run_now", "duplicate", "enable", "disable", "reschedule"]

    @admin.action(description="Run the selected tasks now")
    def run_now(self, request, queryset):

        for task in self.allowed(request, queryset):
            run = enqueue_run(task, Run.Trigger.MANUAL, request.user)
            self.message_user(request, f"{task.name}: run {run.pk} queued", messages.SUCCESS)

    @admin.action(description="Duplicate the selected tasks (disabled copies)")
    def duplicate(self, request, queryset):
        for task in self.allowed(request, queryset):
            copy = task.duplicate()
            self.message_user(request, f"Created {copy.name} (disabled)", messages.SUCCESS)

    def _allowed_queryset(self, request, queryset):
        return Task.objects.filter(pk__in=[task.pk for task in self.allowed(request, queryset)])

    @admin.action(description="Enable the selected tasks")
    def enable(self, request, queryset):
        count = self._allowed_queryset(request, queryset).set_enabled(True)
        self.message_user(request, f"{count_of(count, 'task')} enabled")

    @admin.action(description="Disable the selected tasks")
    def disable(self, request, queryset):
        count = self._allowed_queryset(request, queryset).set_enabled(False)
        self.message_user(request, f"{count_of(count, 'task')} disabled")

    @admin.action(description="Reschedule: remove and recreate the schedules of the selected tasks")
    def reschedule(self, request, queryset):
        from projects.scheduling import reschedule

        allowed = self.allowed(request, queryset.select_related("project"))
        for task in allowed:
            reschedule(task=task)
        self.message_user(request, f"{count_of(len(allowed), 'task')} rescheduled from their projects' triggers")


@admin.register(Dependency)
class DependencyAdmin(OrganizationScoped, SafeHistoryAdmin):
    # A dependency is part of its downstream task: the one that waits.
    organization_path = "downstream__project__organization"
    form = DependencyForm
    list_display = ("upstream", "on", "downstream")
    list_filter = ("on",)
    search_fields = ("upstream__name", "downstream__name")
    autocomplete_fields = ("upstream", "downstream")


@admin.register(Notification)
class NotificationAdmin(OrganizationScoped, SafeHistoryAdmin):
    organization_path = TASK_PATH
    list_display = ("task", "event", "recipients", "include_output")
    list_filter = ("event", "include_output")
    search_fields = ("task__name", "recipients")


@admin.register(Destination)
class DestinationAdmin(OrganizationScoped, SafeHistoryAdmin):
    organization_path = TASK_PATH
    list_display = ("task", "connection", "folder", "overwrite", "skip_empty")
    list_filter = ("overwrite", "skip_empty", ConnectionKindFilter)
    search_fields = ("task__name", "connection__name", "folder")
    autocomplete_fields = ("task", "connection")


@admin.register(Condition)
class ConditionAdmin(OrganizationScoped, SafeHistoryAdmin):
    organization_path = TASK_PATH
    list_display = ("task", "kind", "operator", "value", "connection")
    list_filter = ("kind", "operator")
    search_fields = ("task__name", "value")
    autocomplete_fields = ("task", "connection")
