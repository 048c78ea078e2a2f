"""One connection form for every kind: it offers all fields, and keeps only those the chosen kind uses.

The protocol classes in the registry say which model columns, secrets and option keys a kind uses, so a new
protocol module appears here without any change. Secrets are write-only: never sent back to the browser.
"""
import json

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Layout, Submit
from django import forms
from django.utils.html import escape

from connections import local_paths
from connections.models import Connection
from connections.protocols import ConnectorError, registry
from projects import access
from projects.models import Organization, Role

MODEL_FIELDS = ("host", "port", "username", "database", "path")
FIELD_LABELS = {"host": "Host", "port": "Port", "username": "User name", "database": "Database",
                "path": "Base folder"}
# What a shared column means for a kind; a protocol class may also say it with a `field_labels` dict.
KIND_FIELD_LABELS = {
    "gitlab": {"path": "GitLab URL", "database": "Project (path or numeric ID)"},
    "web": {"path": "URL"},
    "smb": {"database": "Share", "path": "Folder in the share"},
    "sqlite": {"path": "Database file"},
    "local": {"path": "Folder"},
    "smtp": {"username": "User name (blank: no login)"},
}
SECRET_LABELS = {"password": "Password", "private_key": "Private key", "passphrase": "Key passphrase",
                 "token": "Access token"}
KEEP_HELP = "Leave blank to keep the stored value."


def _int(label, help_text="", minimum=1):
    return forms.IntegerField(label=label, required=False, min_value=minimum, help_text=help_text)


# Form fields of the option keys the protocol modules read (Connection.options). A key missing here falls back
# to a plain text field, so a new protocol works before it gets a nicer field.
OPTION_FIELDS = {
    "timeout": _int("Timeout (seconds)", "How long to wait for the server at each step; blank uses the default."),
    "query_timeout": _int("Query timeout (seconds)", "Stop a query that runs longer; blank means no limit."),
    "sslmode": forms.ChoiceField(
        label="SSL mode", required=False,
        choices=[("", "Default (prefer)"), ("disable", "disable"), ("allow", "allow"), ("prefer", "prefer"),
                 ("require", "require"), ("verify-ca", "verify-ca"), ("verify-full", "verify-full")]),
    "security": forms.ChoiceField(label="Connection security", required=False,
                                  choices=[("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")]),
    "tls": forms.BooleanField(label="Use TLS (FTPS)", required=False),
    "verify_tls": forms.BooleanField(label="Verify the server's TLS certificate", required=False, initial=True),
    "domain": forms.CharField(label="Windows domain", required=False),
    "server_name": forms.CharField(label="Server name (NetBIOS)", required=False),
    "driver": forms.CharField(label="ODBC driver", required=False, help_text="For example: PostgreSQL Unicode"),
    "dsn": forms.CharField(label="ODBC data source name (DSN)", required=False),
    "fast_csv": forms.BooleanField(
        label="Fast CSV extracts", required=False, initial=True,
        help_text="PostgreSQL through psqlODBC: the server writes each CSV line, as COPY would, and rows come "
                  "back as one value each. Untick to read the values one by one."),
    "extra": forms.CharField(label="Extra connection settings", required=False,
                             help_text="Appended to the connection string, e.g. Encrypt=yes;"),
    "public_key": forms.CharField(label="Public key (ASCII armored)", required=False, strip=True,
                                  widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace"})),
    "ref": forms.CharField(label="Branch or tag", required=False),
    "file_path": forms.CharField(label="File path in the repository", required=False),
    "token_header": forms.CharField(label="Token header", required=False,
                                    help_text="HTTP header that carries the token, e.g. PRIVATE-TOKEN"),
    "max_bytes": _int("Largest accepted size (bytes)"),
    "from_address": forms.EmailField(label="From address", required=False),
}


def kinds_using(attribute, name):
    """Kind names whose protocol class lists `name` in `attribute` (fields, secret_fields, option_fields)."""
    return sorted(kind for kind, cls in registry.all_kinds().items() if name in getattr(cls, attribute, ()))


def option_keys():
    """Every option key a registered kind reads, in the order of OPTION_FIELDS, unknown keys last."""
    keys = []
    for cls in registry.all_kinds().values():
        keys.extend(key for key in cls.option_fields if key not in keys)
    order = list(OPTION_FIELDS)
    return sorted(keys, key=lambda key: (order.index(key) if key in order else len(order), key))


def secret_names():
    names = list(SECRET_LABELS)
    for cls in registry.all_kinds().values():
        names.extend(name for name in cls.secret_fields if name not in names)
    return names


def field_label(kind, name):
    protocol = registry.get(kind)
    own = getattr(protocol, "field_labels", None) or {}
    return own.get(name) or KIND_FIELD_LABELS.get(kind, {}).get(name) or FIELD_LABELS[name]


def default_port(protocol, options):
    """The port the protocol uses when none is set; it may depend on options (SMTP: 465 for SSL)."""
    if not isinstance(getattr(protocol, "port", None), property):
        return protocol.default_port
    try:
        return int(protocol(Connection(kind=protocol.kind, options=options)).port or 0) or protocol.default_port
    except Exception:  # a protocol that cannot tell from incomplete settings falls back to its class default
        return protocol.default_port


def option_form_field(key):
    if key in OPTION_FIELDS:
        return OPTION_FIELDS[key]
    return forms.CharField(label=key.replace("_", " ").capitalize(), required=False)


def secret_form_field(name):
    label = SECRET_LABELS.get(name, name.replace("_", " ").capitalize())
    if name == "private_key":
        widget = forms.Textarea(attrs={"rows": 4, "class": "font-monospace", "autocomplete": "off"})
    else:
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    # A password may begin or end with a space; only a pasted key is trimmed.
    return forms.CharField(label=label, required=False, widget=widget, strip=(name == "private_key"))


class BaseConnectionForm(forms.ModelForm):
    """Validates and saves only what the chosen kind uses; the rest is cleared."""

    kind = forms.ChoiceField(label="Kind", choices=lambda: registry.choices())
    # When on, a save that changes where the connection points (Connection.addressing_fields) drops the stored
    # secrets not entered again, and the pinned host key when the host moves: else a blank password box would
    # send the stored password to whatever server the new address names.
    drops_secrets_when_readdressed = True

    class Meta:
        model = Connection
        fields = ("organization", "name", "kind", "description") + MODEL_FIELDS

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.dropped_secrets = []
        # Where the stored connection points, before the bound data is copied onto the instance.
        self._stored_address = self._address_of(self.instance) if self.instance.pk else None
        if user is not None:
            # Only an organization's admins manage its connections (projects.access).
            self.fields["organization"].queryset = Organization.objects.where_role(user, Role.ADMIN)
        if self.instance.pk:
            # A connection stays in its organization: its secrets and the tasks using it belong there.
            self.fields["organization"].disabled = True
        if self.is_bound:
            self._drop_fields_of_other_kinds()
        self._describe_fields_per_kind()
        options = self.instance.options or {}
        for key in option_keys():
            if key in options:
                self.initial[key] = options[key]
        for name in secret_names():
            stored = bool(self.instance.secret(name))
            self.fields[name].help_text = KEEP_HELP if stored else ""
            if stored:
                self.fields[name].label += " (stored)"
            self.fields[f"clear_{name}"].label = f"Remove the stored {self.fields[name].label.split(' (')[0].lower()}"

    def _describe_fields_per_kind(self):
        """Labels and default ports per kind, for the script that adapts the form when the kind changes."""
        kinds = registry.all_kinds()
        kind = self.data.get(self.add_prefix("kind")) if self.is_bound else self.instance.kind
        for name in MODEL_FIELDS:
            labels = {other: field_label(other, name) for other in kinds_using("fields", name)}
            self.fields[name].widget.attrs["data-labels"] = json.dumps(labels)
            self.fields[name].label = labels.get(kind) or FIELD_LABELS[name]
            self.fields[name].help_text = ""  # the model's help covers every kind at once; the label says it now
        ports = {other: cls.default_port for other, cls in kinds.items() if cls.default_port}
        self.fields["port"].widget.attrs["data-default-ports"] = json.dumps(ports)

    def chosen_protocol(self):
        kind = self.data.get(self.add_prefix("kind")) if self.is_bound else (self.instance.kind or None)
        return registry.get(kind)

    def _drop_fields_of_other_kinds(self):
        """Values of fields the chosen kind does not use are ignored: neither validated nor saved."""
        protocol = self.chosen_protocol()
        if protocol is None:
            return
        used = set(protocol.fields) | set(protocol.secret_fields) | set(protocol.option_fields)
        used |= {f"clear_{name}" for name in protocol.secret_fields}
        ignored = (set(MODEL_FIELDS) | set(option_keys()) | set(secret_names())
                   | {f"clear_{name}" for name in secret_names()}) - used
        self.data = self.data.copy()
        for name in ignored:
            self.data.pop(self.add_prefix(name), None)
        if "host" in protocol.fields:
            self.fields["host"].required = True

    def clean(self):
        cleaned = super().clean()
        protocol = registry.get(cleaned.get("kind"))
        if protocol is None:
            return cleaned
        for name in MODEL_FIELDS:
            if name not in protocol.fields:
                cleaned[name] = None if name == "port" else ""
        organization = cleaned.get("organization")
        if protocol.uses_server_paths and self.user is not None and organization is not None \
                and not access.organization_rights(self.user, organization).can_write_code:
            self.add_error("kind", access.refusal(access.CODE))
        if "port" in protocol.fields and not cleaned.get("port"):
            cleaned["port"] = default_port(protocol, self.options_for(protocol))
        self._validate_key(protocol, cleaned)
        self._validate_local_path(protocol, cleaned)
        return cleaned

    def _validate_key(self, protocol, cleaned):
        """A pasted GPG key is checked now, so an expired or secret key is refused next to its field."""
        if protocol.kind != "gpg" or "public_key" in self.errors:
            return
        try:
            from connections.protocols.gpg import inspect_key
        except ImportError:
            return
        try:
            inspect_key(cleaned.get("public_key"))
        except ConnectorError as exc:
            self.add_error("public_key", exc.message)

    def _validate_local_path(self, protocol, cleaned):
        """A file or folder on this server only under ETL_LOCAL_ROOTS, never the portal's own files."""
        kind_of_path = getattr(protocol, "local_path", None)
        if not kind_of_path or "path" in self.errors:
            return
        try:
            local_paths.check(cleaned.get("path"), folder=kind_of_path == "folder")
        except ConnectorError as exc:
            self.add_error("path", exc.message)

    # --- where the connection points --------------------------------------------------------------------

    @staticmethod
    def _address_of(connection):
        return {"kind": connection.kind, "options": dict(connection.options or {}),
                **{name: getattr(connection, name) for name in MODEL_FIELDS}}

    def _normal(self, protocol, name, value, options):
        """A value as it takes effect: a blank port is the kind's default, a missing option its form default."""
        if name == "port":
            return int(value or default_port(protocol, options) or 0)
        if name in MODEL_FIELDS:
            return (value or "").strip() if isinstance(value, str) else (value or "")
        field = option_form_field(name)
        if value in (None, ""):
            value = field.initial
        if isinstance(field, forms.BooleanField):
            return bool(value)
        return "" if value is None else str(value).strip()

    def changed_address(self):
        """Names of the addressing columns and options this save changes ([] for a new connection)."""
        stored = self._stored_address
        if stored is None or not hasattr(self, "cleaned_data"):
            return []
        kind = self.cleaned_data.get("kind")
        protocol = registry.get(kind)
        if protocol is None:
            return []
        if kind != stored["kind"]:
            return ["kind"]
        columns, option_names = self.instance.addressing_fields(kind)
        new_options = self.options_for(protocol)
        changed = [name for name in columns if name in MODEL_FIELDS
                   and (self._normal(protocol, name, self.cleaned_data.get(name), new_options)
                        != self._normal(protocol, name, stored[name], stored["options"]))]
        changed += [key for key in option_names
                    if (self._normal(protocol, key, new_options.get(key), new_options)
                        != self._normal(protocol, key, stored["options"].get(key), stored["options"]))]
        return changed

    def address_label(self, kind, name):
        if name == "kind":
            return "Kind"
        return field_label(kind, name) if name in MODEL_FIELDS else (option_form_field(name).label or name)

    def options_for(self, protocol):
        values = {}
        for key in protocol.option_fields:
            value = self.cleaned_data.get(key)
            if value is not None and value != "":
                values[key] = value
        return values

    def secrets_for(self, protocol, keep_stored=True):
        current = dict(self.instance.secrets or {})
        secrets = {}
        for name in protocol.secret_fields:
            value = self.cleaned_data.get(name)
            if self.cleaned_data.get(f"clear_{name}"):
                continue
            if value:
                secrets[name] = value + "\n" if name == "private_key" and not value.endswith("\n") else value
            elif current.get(name):
                if keep_stored:
                    secrets[name] = current[name]
                else:
                    self.dropped_secrets.append(name)
        return secrets

    def dropped_secrets_message(self):
        """What the user is told after a save that dropped stored secrets ("" when none were dropped)."""
        if not self.dropped_secrets:
            return ""
        names = [SECRET_LABELS.get(name, name.replace("_", " ")).lower() for name in self.dropped_secrets]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return (f"The stored {listed} {'was' if len(names) == 1 else 'were'} cleared because the connection now "
                f"points somewhere else ({self._changed_labels()}): enter "
                f"{'it' if len(names) == 1 else 'them'} again before using it.")

    def _changed_labels(self):
        kind = self.cleaned_data.get("kind")
        return ", ".join(self.address_label(kind, name) for name in self.changed_address())

    def save(self, commit=True):
        connection = super().save(commit=False)
        protocol = registry.get(connection.kind)
        connection.options = self.options_for(protocol)
        changed = self.changed_address() if self.drops_secrets_when_readdressed else []
        self.dropped_secrets = []
        connection.secrets = self.secrets_for(protocol, keep_stored=not changed)
        if {"kind", "host", "port"} & set(changed):
            connection.host_key = ""  # a key pinned for the old server says nothing about the new one
        if commit:
            connection.save()
        return connection


def _kind_dependent_fields():
    fields = {}
    for key in option_keys():
        fields[key] = option_form_field(key)
    for name in secret_names():
        fields[name] = secret_form_field(name)
        fields[f"clear_{name}"] = forms.BooleanField(required=False)
    return fields


# The option and secret fields of every registered kind are declared on the class, so the admin can list them.
ConnectionForm = type("ConnectionForm", (BaseConnectionForm,), {"__module__": __name__, **_kind_dependent_fields()})


def kind_wrapper(attribute, name, *items):
    return Div(*items, css_class="kind-field", data_kinds=" ".join(kinds_using(attribute, name)))


class ConnectionPageForm(ConnectionForm):
    """The analysts' form: laid out with crispy forms, fields shown per kind by static/js/connection-form.js."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].empty_label = None
        self.helper = FormHelper()
        self.helper.form_id = "connection-form"
        self.helper.layout = self.build_layout()
        self.helper.add_input(Submit("save", "Save connection"))

    def build_layout(self):
        items = [Field("organization"), Field("name"), Field("kind", css_class="connection-kind"),
                 Field("description", rows=2)]
        items += [kind_wrapper("fields", name, Field(name)) for name in MODEL_FIELDS]
        notice = self.readdress_notice()
        if notice:
            items.append(HTML(f'<div class="alert alert-info small py-2" id="readdress-notice">{notice}</div>'))
        for name in secret_names():
            parts = [Field(name)]
            if self.instance.secret(name):
                parts.append(Field(f"clear_{name}"))
            items.append(kind_wrapper("secret_fields", name, *parts))
        items += [kind_wrapper("option_fields", key, Field(key)) for key in option_keys()]
        if not self.instance.pk:
            items.append(HTML('<p class="text-muted small">Test the connection from its page after saving.</p>'))
        return Layout(*items)

    def readdress_notice(self):
        """Said before saving, next to the secret boxes: which changes clear the stored secrets."""
        stored = [name for name in secret_names() if self.instance.secret(name)]
        if not self.instance.pk or not stored:
            return ""
        columns, options = self.instance.addressing_fields()
        labels = [self.address_label(self.instance.kind, name) for name in columns + options]
        secrets = " and ".join(SECRET_LABELS.get(name, name.replace("_", " ")).lower() for name in stored)
        return escape(f"Changing where this connection points ({', '.join(labels)}) clears its stored {secrets}; "
                      f"enter {'it' if len(stored) == 1 else 'them'} again in the same save.")
