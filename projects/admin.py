from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from audit.admin_history import SafeHistoryAdmin
from etl_portal.admin_site import count_of
from projects import access, scheduling, system_jobs
from projects.admin_access import OrganizationScoped, ParentScopedInline
from projects.forms import TriggerForm
from projects.models import LeaderLease, Membership, Organization, Parameter, Project, SystemJob, Trigger
from tasks.forms import ParameterForm


class MembershipInline(ParentScopedInline, admin.TabularInline):
    # A new member is someone not yet in the organization: any user may be picked.
    unscoped_fields = ("user",)
    model = Membership
    extra = 0
    fields = ("user", "role", "can_write_code", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(OrganizationScoped, SafeHistoryAdmin):
    # Its admins change it (and its members); only a superuser creates or deletes an organization.
    organization_path = ""
    need = access.MANAGE
    delete_need = access.SUPERUSER
    list_display = ("name", "created_at")
    list_filter = ("created_at",)
    search_fields = ("name",)
    inlines = [MembershipInline]
    # Shared settings are checked against the registry on their own page (/organizations/<id>/settings/).
    readonly_fields = ("settings",)


@admin.register(Membership)
class MembershipAdmin(OrganizationScoped, SafeHistoryAdmin):
    # Only an organization's admins grant roles in it: the organization choices are those they administer.
    organization_path = "organization"
    need = access.MANAGE
    unscoped_fields = ("user",)
    list_display = ("user", "organization", "role", "can_write_code", "created_at")
    list_filter = ("role", "can_write_code", "organization")
    search_fields = ("user__username", "user__email", "organization__name")
    list_select_related = ("user", "organization")
    autocomplete_fields = ("user", "organization")


class TriggerInline(ParentScopedInline, admin.StackedInline):
    model = Trigger
    form = TriggerForm
    extra = 0
    readonly_fields = ("next_run_at", "last_fired_at")
    fieldsets = (
        (None, {"fields": (("kind", "enabled"), ("time_zone", "jitter_seconds"), ("start_at", "end_at"),
                           ("next_run_at", "last_fired_at"))}),
        ("Cron (blank = every; cron syntax such as 1-5, */15, mon-fri)", {"fields": (
            ("year", "month", "day", "week", "day_of_week"), ("hour", "minute", "second"))}),
        ("Interval", {"fields": (("every", "unit"),)}),
        ("One-off", {"fields": ("run_at",)}),
    )


class RescheduleMixin:
    @admin.action(description="Reschedule: remove and recreate the selected items' schedules")
    def reschedule(self, request, queryset):
        allowed = self.allowed(request, queryset)
        for item in allowed:
            self.reschedule_one(item)
        self.message_user(request, f"{len(allowed)} rescheduled from their triggers", messages.SUCCESS)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        self.reschedule_one(form.instance)

    @admin.display(description="Next run")
    def next_run(self, item):
        upcoming = [t.next_run_at for t in item.triggers.all() if t.enabled and t.next_run_at]
        return timezone.localtime(min(upcoming)) if upcoming else "-"


@admin.register(Project)
class ProjectAdmin(RescheduleMixin, OrganizationScoped, SafeHistoryAdmin):
    organization_path = "organization"
    list_display = ("name", "organization", "owner", "mode", "enabled", "time_zone", "next_run")
    list_filter = ("enabled", "mode", "organization")
    search_fields = ("name", "owner__username")
    list_select_related = ("organization", "owner")
    filter_horizontal = ("editor_groups",)
    inlines = [TriggerInline]
    readonly_fields = ("settings",)  # checked on the project's settings page (/projects/<id>/settings/)
    actions = ["reschedule", "duplicate"]

    def reschedule_one(self, project):
        scheduling.reschedule(project=project)

    @admin.action(description="Duplicate the selected projects (disabled copies with their tasks)")
    def duplicate(self, request, queryset):
        for project in self.allowed(request, queryset):
            copy = project.duplicate()  # the same method as the project page's Duplicate
            self.message_user(request, f"Created {copy.name} (disabled)", messages.SUCCESS)


class SystemJobForm(forms.ModelForm):
    function = forms.ChoiceField(choices=system_jobs.choices,
                                 help_text="Only functions from the portal's registry can be scheduled.")

    class Meta:
        model = SystemJob
        fields = ("name", "function", "args", "kwargs", "max_instances", "active", "time_zone")


@admin.register(SystemJob)
class SystemJobAdmin(RescheduleMixin, OrganizationScoped, admin.ModelAdmin):
    # Portal housekeeping: superusers only, every action included.
    superuser_only = True
    form = SystemJobForm
    list_display = ("name", "function_label", "active", "max_instances", "next_run", "last_started_at",
                    "last_result_short")
    list_filter = ("active",)
    search_fields = ("name",)
    readonly_fields = ("last_started_at", "last_finished_at", "last_result", "running_count")
    inlines = [TriggerInline]
    actions = ["reschedule", "run_now", "activate", "deactivate"]

    def reschedule_one(self, job):
        for trigger in job.triggers.all():
            scheduling.arm(trigger)

    @admin.display(description="Function")
    def function_label(self, job):
        entry = system_jobs.REGISTRY.get(job.function)
        return entry.label if entry else f"{job.function} (unknown)"

    @admin.display(description="Last result")
    def last_result_short(self, job):
        return (job.last_result or "")[:80]

    @admin.action(description="Run the selected jobs now (in the background)")
    def run_now(self, request, queryset):
        from django_q.tasks import async_task

        allowed = self.allowed(request, queryset)
        for job in allowed:
            async_task("projects.system_jobs.run_system_job", job.pk, group="system-jobs")
        self.message_user(request, f"{count_of(len(allowed), 'job')} queued", messages.SUCCESS)

    @admin.action(description="Activate the selected jobs")
    def activate(self, request, queryset):
        allowed = SystemJob.objects.filter(pk__in=[job.pk for job in self.allowed(request, queryset)])
        self.message_user(request, f"{count_of(allowed.update(active=True), 'job')} active from the next trigger time")

    @admin.action(description="Deactivate the selected jobs")
    def deactivate(self, request, queryset):
        allowed = SystemJob.objects.filter(pk__in=[job.pk for job in self.allowed(request, queryset)])
        self.message_user(request, f"{count_of(allowed.update(active=False), 'job')} inactive")


@admin.register(Parameter)
class ParameterAdmin(OrganizationScoped, SafeHistoryAdmin):
    organization_path = ("organization", "project__organization", "task__project__organization")
    form = ParameterForm
    list_display = ("key", "shown_value", "sensitive", "organization", "project", "task")
    list_filter = ("sensitive",)
    search_fields = ("key", "organization__name", "project__name", "task__name")
    raw_id_fields = ("organization", "project", "task")

    def allows(self, request, obj, need=None):
        # An organization's parameters are its admins' to change, as on its settings page.
        if obj is not None and obj.organization_id and (need or self.need) == access.EDIT:
            need = access.MANAGE
        return super().allows(request, obj, need)

    @admin.display(description="value")
    def shown_value(self, parameter):
        return "********" if parameter.sensitive else parameter.value


@admin.register(Trigger)
class TriggerAdmin(OrganizationScoped, SafeHistoryAdmin):
    # A system job's triggers have no organization: only superusers see them.
    organization_path = "project__organization"
    form = TriggerForm
    list_display = ("__str__", "kind", "project", "system_job", "enabled", "time_zone", "next_run_at",
                    "last_fired_at")
    list_filter = ("kind", "enabled")
    search_fields = ("project__name", "system_job__name")
    raw_id_fields = ("project", "system_job")
    readonly_fields = ("next_run_at", "last_fired_at")


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PortalUserAdmin(UserAdmin):
    """Django's user admin, except that only a superuser grants what goes beyond an organization role:
    superuser status, Django permissions and groups (a project's editor groups make a viewer its editor)."""

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if request.user.is_superuser:
            return fields
        return (*fields, "is_superuser", "user_permissions", "groups")


@admin.register(LeaderLease)
class LeaderLeaseAdmin(admin.ModelAdmin):
    """Who leads housekeeping, and the workers' heartbeats: to look at, never to edit (the processes own them)."""

    list_display = ("name", "holder", "token", "expires_at", "renewed_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
