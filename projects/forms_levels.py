"""The organization's and the project's shared settings form (tasks/inheritance.py): one field per setting,
blank meaning "not set at this level", plus the level's parameters."""
from django import forms
from django.core.exceptions import ValidationError
from django.forms import inlineformset_factory

from connections.models import Connection
from projects.models import Organization, Parameter
from tasks import inheritance
from tasks.forms import ParameterForm


class LevelSettingsForm(forms.Form):
    def __init__(self, *args, holder, **kwargs):
        super().__init__(*args, **kwargs)
        self.holder = holder
        organization = holder if isinstance(holder, Organization) else holder.organization
        self.connections = Connection.objects.filter(organization=organization)
        inherited = inheritance.inherited_by_level(holder)
        self.groups = {}
        stored = holder.settings or {}
        for setting in inheritance.SETTINGS:
            item = inherited[setting.name]
            field = setting.form_field(self.connections,
                                       inherit_label=f"Not set: {item.display} ({item.level_label})")
            field.help_text = f"Not set: inherits “{item.display}” ({item.level_label})."
            self.fields[setting.name] = field
            self.initial[setting.name] = stored.get(setting.name)
            self.groups.setdefault(setting.group, []).append(setting.name)

    def grouped_fields(self):
        return [(group, [self[name] for name in names]) for group, names in self.groups.items()]

    def clean(self):
        cleaned = super().clean()
        try:
            self.stored = inheritance.clean_level_settings(
                {name: value for name, value in cleaned.items() if name in inheritance.BY_NAME},
                None, connections=self.connections)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.add_error(name, messages)
        return cleaned

    def changes(self):
        """[(setting, old shown, new shown, tasks, projects)] for what this save changes, with how many tasks
        (in how many projects) take the new value: those under this level that do not set it themselves."""
        changed = inheritance.changed_names(self.holder, self.stored)
        counts = inheritance.affected_tasks(inheritance.level_of(self.holder), self.holder, changed)
        old = self.holder.settings or {}
        rows = []
        for name in changed:
            setting = inheritance.BY_NAME[name]
            rows.append((setting, self._shown(setting, old.get(name)), self._shown(setting, self.stored.get(name)),
                         *counts[name]))
        return rows

    def _shown(self, setting, raw):
        if raw is None:
            return "not set"
        if setting.is_connection:
            return str(self.connections.filter(pk=raw).first() or f"connection {raw}")
        return setting.display(raw)


OrganizationParameterFormSet = inlineformset_factory(
    Organization, Parameter, form=ParameterForm, fields=("key", "value", "sensitive"), fk_name="organization",
    extra=1, can_delete=True)
