from django.contrib import admin

from projects.models import Organization, Project


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    filter_horizontal = ("members",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "owner", "mode", "enabled", "time_zone")
    list_filter = ("enabled", "mode", "organization")
    search_fields = ("name", "owner__username")
    list_select_related = ("organization", "owner")
    filter_horizontal = ("editor_groups",)
