from django import forms
from django.contrib import admin, messages

from connections.models import Connection
from connections.protocols import registry


class ConnectionAdminForm(forms.ModelForm):
    """Secrets are write-only: blank keeps the stored value, and the stored value is never shown."""

    kind = forms.ChoiceField(choices=lambda: registry.choices())
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Leave blank to keep the stored password.")
    private_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="Leave blank to keep the stored key.")
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    clear_secrets = forms.BooleanField(required=False, help_text="Remove every stored secret.")

    class Meta:
        model = Connection
        exclude = ("secrets",)

    SECRET_NAMES = ("password", "private_key", "passphrase", "token")

    def save(self, commit=True):
        connection = super().save(commit=False)
        secrets = {} if self.cleaned_data.get("clear_secrets") else dict(connection.secrets or {})
        for name in self.SECRET_NAMES:
            if self.cleaned_data.get(name):
                secrets[name] = self.cleaned_data[name]
        connection.secrets = secrets
        if commit:
            connection.save()
        return connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = ("name", "kind", "organization", "host", "port", "username", "last_test_ok", "last_tested_at")
    list_filter = ("kind", "organization", "last_test_ok")
    search_fields = ("name", "host", "username")
    readonly_fields = ("last_tested_at", "last_test_ok", "last_test_message", "created_at", "updated_at")
    actions = ["test_connections"]

    @admin.action(description="Test the selected connections")
    def test_connections(self, request, queryset):
        from connections.services import test_connection

        for connection in queryset:
            ok, message = test_connection(connection)
            self.message_user(request, f"{connection.name}: {message}", messages.SUCCESS if ok else messages.ERROR)
