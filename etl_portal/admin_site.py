"""What every admin page shares: the portal's name in the header and title, and helpers for its lists."""
from django.contrib import admin

from etl_portal.web import count_of  # noqa: F401  (admin messages use it from here)

admin.site.site_header = "ETL Portal administration"
admin.site.site_title = "ETL Portal admin"
admin.site.index_title = "Operate the portal"


class KindFilter(admin.SimpleListFilter):
    """Connection kinds by their labels (PostgreSQL), not their stored values (postgresql)."""
    title = "kind"
    parameter_name = "kind"
    field = "kind"

    def lookups(self, request, model_admin):
        from connections.protocols import registry
        return registry.choices()

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ConnectionKindFilter(KindFilter):
    parameter_name = "connection__kind"
    field = "connection__kind"


class SystemWritten:
    """Records the portal writes itself (runs, log lines, files, downloads): no Add in the admin."""

    def has_add_permission(self, request, *args):
        return False
