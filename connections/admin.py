from django.contrib import admin, messages

from audit.admin_history import SafeHistoryAdmin
from etl_portal.admin_site import KindFilter, SystemWritten
from connections.forms import MODEL_FIELDS, ConnectionForm, kinds_using, option_keys, secret_names, with_kind_fields
from connections.forms_windows import MaintenanceWindowForm
from connections.models import Connection, ConnectionTest, MaintenanceWindow
from projects import access
from projects.admin_access import OrganizationScoped


class ConnectionAdminForm(ConnectionForm):
    """The portal's form: every kind, write-only secrets, only the chosen kind's fields kept on save."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # static/js/connection-form.js hides the row of an input whose kinds do not include the chosen one.
        kind_dependent = [(name, "fields") for name in MODEL_FIELDS]
        kind_dependent += [(key, "option_fields") for key in option_keys()]
        kind_dependent += [(name, "secret_fields") for name in secret_names()]
        kind_dependent += [(f"clear_{name}", "secret_fields", name) for name in secret_names()]
        for name, attribute, *used_as in kind_dependent:
            if name in self.fields:
                kinds = kinds_using(attribute, used_as[0] if used_as else name)
                self.fields[name].widget.attrs["data-kinds"] = " ".join(kinds)

    class Media:
        js = ("js/connection-form.js",)


@admin.register(Connection)
class ConnectionAdmin(OrganizationScoped, SafeHistoryAdmin):
    # Only an organization's admins manage its connections; testing one needs the editor role, as on its page.
    # ConnectionForm.clean asks for the code permission for SQLite and local folders (the form gets the user).
    organization_path = "organization"
    need = access.MANAGE
    form = ConnectionAdminForm
    list_display = ("name", "kind_name", "organization", "host", "port", "username", "max_runs", "last_test_ok",
                    "last_tested_at")
    list_filter = (KindFilter, "organization", "last_test_ok")
    search_fields = ("name", "host", "username")
    readonly_fields = ("last_tested_at", "last_test_ok", "last_test_message", "created_at", "updated_at")
    actions = ["test_connections"]

    def get_form(self, request, obj=None, **kwargs):
        # The fieldsets name the fields of every kind registered now, so the form class must declare them all.
        return super().get_form(request, obj, form=with_kind_fields(self.form), **kwargs)

    def get_fieldsets(self, request, obj=None):
        secrets = []
        for name in secret_names():
            secrets.append(name)
            if obj is not None and obj.secret(name):
                secrets.append(f"clear_{name}")
        return [
            (None, {"fields": ("organization", "name", "kind", "description", "max_runs")}),
            ("Address", {"fields": MODEL_FIELDS}),
            ("Secrets", {"fields": secrets + ["secret_expires_on"],
                         "description": "Write-only: a stored value is never shown. Leave a field blank to keep "
                                        "what is stored."}),
            ("Options", {"fields": option_keys()}),
            ("Host key and last test", {"fields": ("host_key",) + self.readonly_fields}),
        ]

    @admin.display(description="kind", ordering="kind")
    def kind_name(self, connection):
        return connection.kind_label

    @admin.action(description="Test the selected connections")
    def test_connections(self, request, queryset):
        from connections.services import test_connection

        for connection in self.allowed(request, queryset, access.EDIT):
            ok, message = test_connection(connection, by=request.user.username)
            self.message_user(request, f"{connection.name} ({connection.kind_label}): {message}",
                              messages.SUCCESS if ok else messages.ERROR)


@admin.register(ConnectionTest)
class ConnectionTestAdmin(SystemWritten, OrganizationScoped, admin.ModelAdmin):
    organization_path = "connection__organization"
    need = access.MANAGE  # a test record is the connection's: deleted by those who manage it
    list_display = ("connection", "tested_at", "ok", "by", "message")
    list_filter = ("ok", "tested_at")
    search_fields = ("connection__name", "message", "by")
    list_select_related = ("connection",)
    raw_id_fields = ("connection",)


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(OrganizationScoped, SafeHistoryAdmin):
    """A connection's maintenance windows (also on its page): managed by its organization's admins, who alone may
    pick the connection; the same form as the page (one-off times read in the window's zone)."""

    organization_path = "connection__organization"
    need = access.MANAGE
    form = MaintenanceWindowForm
    list_display = ("connection", "__str__", "note")
    list_filter = ("kind", "connection")
    search_fields = ("connection__name", "note")
    fields = ("connection", "kind", "days", "start_time", "end_time", "starts_at", "ends_at", "time_zone", "note")
