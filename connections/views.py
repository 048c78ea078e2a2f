"""The analysts' connection pages: list, details with a Test button, one form for every kind, delete."""
import base64
import binascii
import hashlib

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import ProtectedError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from connections.expiry import expiries_of
from connections.forms import ConnectionPageForm, option_form_field
from connections.forms_windows import WindowFormSet
from connections.models import Connection
from connections.protocols import registry
from connections.services import test_connection
from projects import access
from projects.models import Organization, Role
from runs.pools import running_using
from runs.windows import closed_connections
from tasks import inheritance


def visible_connections(user):
    return Connection.objects.visible_to(user).select_related("organization")


def address(connection):
    if connection.host:
        return f"{connection.host}:{connection.port}" if connection.port else connection.host
    return connection.path


def host_key_fingerprint(host_key):
    """SHA256 fingerprint of a pinned "type base64" key, as `ssh-keygen -l` prints it."""
    try:
        key_type, blob = host_key.split()[:2]
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
    except (ValueError, binascii.Error):
        return ""
    return f"{key_type} SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def readable_settings(connection):
    """(label, value) pairs of what the kind uses; a secret only ever shows as stored or not set."""
    protocol = registry.get(connection.kind)
    if protocol is None:
        return [("Kind", f"{connection.kind} (no longer available)")]
    rows = [(protocol.field_label(name), getattr(connection, name) or "—") for name in protocol.fields]
    options = connection.options or {}
    for key in protocol.option_fields:
        field = option_form_field(key, protocol)
        value = options.get(key, field.initial)  # an option never saved has its form's default
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif value not in (None, ""):
            value = protocol.readable_option(key, value)  # a certificate: its key id and validity, not its text
        rows.append((field.label or key, "—" if value in (None, "") else value))
    for name, secret in protocol.secret_fields.items():
        rows.append((secret.label, "stored" if connection.secret(name) else "not set"))
    return rows


def connection_list(request):
    connections = list(visible_connections(request.user))
    for connection in connections:
        connection.address = address(connection)
    return render(request, "connections/connection_list.html", {
        "connections": connections, "can_create": Organization.objects.where_role(request.user, Role.ADMIN).exists()})


TEST_HISTORY = 20


def connection_detail(request, pk, test_result=None):
    connection = access.get_connection(request.user, pk)
    return render(request, "connections/connection_detail.html", {
        "connection": connection,
        "rights": connection.rights,
        "address": address(connection),
        "settings_rows": readable_settings(connection),
        "host_key_fingerprint": host_key_fingerprint(connection.host_key) if connection.host_key else "",
        "users": connection.users(),
        "runs_using": running_using(connection.pk) if connection.max_runs else 0,
        "windows": connection.maintenance_windows.all(),
        "in_maintenance_until": closed_connections().get(connection.pk),
        "test_result": test_result,
        "expiries": expiries_of(connection),
        "tests": connection.tests.all()[:TEST_HISTORY],
    })


def connection_form(request, pk=None):
    if pk:
        connection = access.get_connection(request.user, pk, access.MANAGE)
    elif Organization.objects.where_role(request.user, Role.ADMIN).exists():
        connection = Connection()
    else:
        raise PermissionDenied("Only an admin of an organization may create its connections.")
    form = ConnectionPageForm(request.POST or None, instance=connection, user=request.user)
    if request.method == "POST" and form.is_valid():
        connection = form.save()
        messages.success(request, f"Connection {connection.name} is saved.")
        if form.dropped_secrets:  # the form decides what was dropped and says why; the view only shows it
            messages.warning(request, form.dropped_secrets_message())
        return redirect("connections:detail", pk=connection.pk)
    return render(request, "connections/connection_form.html", {
        "form": form, "connection": connection if pk else None,
    })


@require_POST
def connection_test(request, pk):
    """Try the connection now (editors, who use connections in tasks, may). A script on the page gets only
    the result box; without it, the whole page."""
    connection = access.get_connection(request.user, pk, access.EDIT)
    ok, message = test_connection(connection, by=request.user.username)
    result = {"ok": ok, "message": message}
    if request.headers.get("X-Requested-With") == "fetch":
        connection.refresh_from_db()
        return render(request, "connections/_test_result_update.html", {"test_result": result,
                                                                        "connection": connection})
    return connection_detail(request, pk, test_result=result)


def connection_windows(request, pk):
    """The connection's maintenance windows, added, changed and deleted together (organization admins)."""
    connection = access.get_connection(request.user, pk, access.MANAGE)
    formset = WindowFormSet(request.POST or None, instance=connection, prefix="windows")
    if request.method == "POST" and formset.is_valid():
        formset.save()  # each window's change enters its history (audit)
        messages.success(request, f"The maintenance windows of {connection.name} are saved.")
        return redirect("connections:detail", pk=connection.pk)
    return render(request, "connections/connection_windows.html", {"connection": connection, "formset": formset})


@require_POST
def connection_forget_host_key(request, pk):
    connection = access.get_connection(request.user, pk, access.MANAGE)
    connection.host_key = ""
    connection.save(update_fields=["host_key", "updated_at"])  # saved, so the change enters its history
    messages.success(request, "The pinned host key is forgotten; the key offered at the next connection is pinned.")
    return redirect("connections:detail", pk=connection.pk)


def connection_delete(request, pk):
    connection = access.get_connection(request.user, pk, access.MANAGE)
    users = connection.users()
    levels = inheritance.levels_using(connection)
    if request.method == "POST" and not users.exists() and not levels:
        name = connection.name
        try:
            connection.delete()
        except ProtectedError:  # a task started using it between the check and the delete
            pass
        else:
            messages.success(request, f"Connection {name} is deleted.")
            return redirect("connections:list")
    return render(request, "connections/connection_confirm_delete.html",
                  {"connection": connection, "users": users, "levels": levels},
                  status=409 if request.method == "POST" else 200)
