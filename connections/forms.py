"""One connection form for every kind: it offers all fields, and keeps only those the chosen kind uses.

The protocol classes in the registry say which model columns, secrets and option keys a kind uses, so a new
protocol module appears here without any change. Secrets are write-only: never sent back to the browser.
"""
import copy
import json

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Layout, Submit
from django import forms
from django.utils.html import escape

from connections.models import Connection
from connections.protocols import registry
from connections.protocols.base import FIELD_LABELS, MODEL_FIELDS, Secret
from projects import access
from projects.models import Organization, Role

KEEP_HELP = "Leave blank to keep the stored value."


def kinds_using(attribute, name):
    """Kind names whose protocol class lists `name` in `attribute` (fields, secret_fields, option_fields)."""
    return sorted(kind for kind, cls in registry.all_kinds().items() if name in getattr(cls, attribute, ()))


def _first_declaring(attribute, name, protocol=None):
    """The declaration of `name` in `attribute` of `protocol`, else of the first registered kind declaring it."""
    for cls in ([protocol] if protocol else []) + list(registry.all_kinds().values()):
        declared = getattr(cls, attribute, None) or {}
        if name in declared:
            return declared[name]
    return None


def option_keys():
    """Every option key a registered kind reads, in the order the kinds declare them."""
    keys = []
    for cls in registry.all_kinds().values():
        keys.extend(key for key in cls.option_fields if key not in keys)
    return keys


def secret_names():
    names = []
    for cls in registry.all_kinds().values():
        names.extend(name for name in cls.secret_fields if name not in names)
    return names


def secret_of(name, protocol=None):
    """The `Secret` declaration of `name` (its label; multi-line or not)."""
    return _first_declaring("secret_fields", name, protocol) or Secret(name.replace("_", " ").capitalize())


def field_label(kind, name):
    protocol = registry.get(kind)
    return protocol.field_label(name) if protocol else FIELD_LABELS[name]


def option_form_field(key, protocol=None):
    """A new form field for the option `key`, as `protocol` (else the first kind reading it) declares it."""
    declared = _first_declaring("option_fields", key, protocol)
    if declared is None:  # an option stored by a kind no longer registered
        return forms.CharField(label=key.replace("_", " ").capitalize(), required=False)
    return copy.deepcopy(declared)


class SecretTextarea(forms.Textarea):
    """A text area for a multi-line secret (a private key) that never sends it back, not even when the form is
    shown again for an error elsewhere (as a password box does with render_value=False)."""

    def format_value(self, value):
        return None


def secret_form_field(name, protocol=None):
    secret = secret_of(name, protocol)
    if secret.multiline:
        widget = SecretTextarea(attrs={"rows": 4, "class": "font-monospace", "autocomplete": "off"})
    else:
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    # A password may begin or end with a space; only a pasted key is trimmed.
    return forms.CharField(label=secret.label, required=False, widget=widget, strip=secret.multiline)


def kind_dependent_fields(protocol=None):
    """Form fields of every registered kind's options and secrets (`protocol`'s own definitions first)."""
    fields = {}
    for key in option_keys():
        fields[key] = option_form_field(key, protocol)
    for name in secret_names():
        fields[name] = secret_form_field(name, protocol)
        fields[f"clear_{name}"] = forms.BooleanField(required=False)
    return fields


class BaseConnectionForm(forms.ModelForm):
    """Validates and saves only what the chosen kind uses; the rest is cleared."""

    kind = forms.ChoiceField(label="Kind", choices=lambda: registry.choices())
    # When on, a save that changes where the connection points (Connection.addressing_fields) drops the stored
    # secrets not entered again, and the pinned host key when the host moves: else a blank password box would
    # send the stored password to whatever server the new address names.
    drops_secrets_when_readdressed = True

    class Meta:
        model = Connection
        fields = ("organization", "name", "kind", "description", "max_runs") + MODEL_FIELDS + ("secret_expires_on",)
        widgets = {"secret_expires_on": forms.DateInput(attrs={"type": "date"})}
        labels = {"secret_expires_on": "Password or key expires on"}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.dropped_secrets = []
        # Where the stored connection points, before the bound data is copied onto the instance.
        self._stored_address = self._address_of(self.instance) if self.instance.pk else None
        # Kinds registered after this class was made (a test's) get their fields too; the chosen kind's own
        # definitions replace those of other kinds sharing a key.
        chosen = self.chosen_protocol()
        for name, field in kind_dependent_fields(chosen).items():
            if name not in self.fields or (chosen and name in {*chosen.option_fields, *chosen.secret_fields}):
                self.fields[name] = field
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
            cleaned["port"] = protocol.port_for(self.options_for(protocol))
        # The protocol's own checks (a server path under ETL_LOCAL_ROOTS, a usable GPG key, a certificate for the
        # key), next to the field.
        for name, message in protocol.validate(self._values_to_check(protocol, cleaned)).items():
            if name not in self.errors:
                self.add_error(name if name in self.fields else None, message)
        return cleaned

    def _values_to_check(self, protocol, cleaned):
        """The settings as this save will store them: the secrets entered now, else those kept (a certificate is
        checked against the stored private key when no new one is entered)."""
        keep = not (self.drops_secrets_when_readdressed and self.changed_address())
        secrets = self.secrets_for(protocol, keep_stored=keep)
        self.dropped_secrets = []  # said by save(), which decides again
        return {**cleaned, **{name: secrets.get(name, "") for name in protocol.secret_fields}}

    def _found_expiries(self, protocol, options):
        """The connection's found expiries with those its settings tell (an OpenSSH certificate's end) noted now,
        in place of those the stored settings told: a replaced certificate's date does not linger until a test."""
        stored = self._stored_address
        before = registry.get(stored["kind"]) if stored else None
        now = protocol.settings_expiries(options)
        replaced = {what for what, _ in now}
        if before is not None:
            replaced |= {what for what, _ in before.settings_expiries(stored["options"])}
        kept = [item for item in (self.instance.found_expiries or [])
                if not (isinstance(item, dict) and item.get("what") in replaced)]
        return kept + [{"what": what, "expires_on": date.isoformat()} for what, date in now]

    # --- where the connection points --------------------------------------------------------------------

    @staticmethod
    def _address_of(connection):
        return {"kind": connection.kind, "options": dict(connection.options or {}),
                **{name: getattr(connection, name) for name in MODEL_FIELDS}}

    def _normal(self, protocol, name, value, options):
        """A value as it takes effect: a blank port is the kind's default, a missing option its form default."""
        if name == "port":
            return int(value or protocol.port_for(options) or 0)
        if name in MODEL_FIELDS:
            return (value or "").strip() if isinstance(value, str) else (value or "")
        field = option_form_field(name, protocol)
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
        return field_label(kind, name) if name in MODEL_FIELDS else (
            option_form_field(name, registry.get(kind)).label or name)

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
                multiline = protocol.secret_fields[name].multiline
                secrets[name] = value + "\n" if multiline and not value.endswith("\n") else value
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
        protocol = registry.get(self.cleaned_data.get("kind"))
        names = [secret_of(name, protocol).label.lower() for name in self.dropped_secrets]
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
        connection.found_expiries = self._found_expiries(protocol, connection.options)
        changed = self.changed_address() if self.drops_secrets_when_readdressed else []
        self.dropped_secrets = []
        connection.secrets = self.secrets_for(protocol, keep_stored=not changed)
        if {"kind", "host", "port"} & set(changed):
            connection.host_key = ""  # a key pinned for the old server says nothing about the new one
        if commit:
            connection.save()
        return connection


def with_kind_fields(form_class):
    """`form_class` with the option and secret fields of every kind registered now declared on it, for the
    admin, which lists fields by name before making a form."""
    return type(form_class.__name__, (form_class,), {"__module__": form_class.__module__, **kind_dependent_fields()})


ConnectionForm = with_kind_fields(BaseConnectionForm)


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
                 Field("description", rows=2), Field("max_runs")]
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
        items.append(Field("secret_expires_on"))
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
        protocol = self.instance.protocol
        secrets = " and ".join(secret_of(name, protocol).label.lower() for name in stored)
        return escape(f"Changing where this connection points ({', '.join(labels)}) clears its stored {secrets}; "
                      f"enter {'it' if len(stored) == 1 else 'them'} again in the same save.")
