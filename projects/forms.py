from crispy_forms.helper import FormHelper
from django import forms
from django.core.exceptions import ValidationError
from django.forms import inlineformset_factory

from projects import access, cron_expression, triggers
from projects.models import Organization, Parameter, Project, Role, Trigger
from tasks.forms import ParameterForm


class ProjectForm(forms.ModelForm):
    # A new project may start from another's shared settings and parameters (a project template), not its tasks.
    template = forms.ModelChoiceField(
        Project.objects.none(), required=False, label="Copy shared settings and parameters from",
        help_text="Another project of the same organization whose shared settings and parameters the new project "
                  "starts with (its tasks are not copied). Parameters typed below win.")

    class Meta:
        model = Project
        fields = ("organization", "name", "description", "owner", "editor_groups", "enabled", "mode", "max_parallel",
                  "time_zone", "missed_runs")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        organizations = Organization.objects.where_role(user, Role.EDITOR)
        self.fields["organization"].queryset = organizations
        # Pickers offer only the people and groups of the organizations the user edits in.
        self.fields["owner"].queryset = access.users_of(organizations, Role.EDITOR)
        self.fields["owner"].help_text = "An editor or admin of the organization. Only the owner or an " \
                                         "organization admin may hand the project to someone else."
        self.fields["editor_groups"].queryset = access.groups_of(organizations)
        if self.instance.pk:
            # A project stays in its organization: its tasks use that organization's connections.
            self.fields["organization"].disabled = True
            self.fields["organization"].queryset = Organization.objects.filter(pk=self.instance.organization_id)
            own = Organization.objects.filter(pk=self.instance.organization_id)
            self.fields["owner"].queryset = access.users_of(own, Role.EDITOR)
            self.fields["editor_groups"].queryset = access.groups_of(own)
            rights = access.project_rights(user, self.instance)
            if not (rights.can_manage or self.instance.owner_id == user.pk):
                self.fields["owner"].disabled = True
        else:
            self.fields["template"].queryset = Project.objects.visible_to(user).select_related("organization")
            self.initial.setdefault("owner", user.pk)
            only = list(organizations[:2])
            if len(only) == 1:
                self.initial.setdefault("organization", only[0].pk)
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean(self):
        cleaned = super().clean()
        organization, owner = cleaned.get("organization"), cleaned.get("owner")
        if organization and owner and not access.organization_rights(owner, organization).can_edit:
            self.add_error("owner", f"{owner} is not an editor or admin of {organization}.")
        template = cleaned.get("template")
        if template and organization and template.organization_id != organization.pk:
            self.add_error("template", "Choose a project of the same organization: settings name its connections.")
        return cleaned

    def clean_time_zone(self):
        import zoneinfo

        name = self.cleaned_data["time_zone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"{name!r} is not a time zone name (for example Europe/London)") from None
        return name


class TriggerForm(forms.ModelForm):
    expression = forms.CharField(
        required=False, label="Cron expression",
        widget=forms.TextInput(attrs={"class": "font-monospace cron-expression", "placeholder": "0 6 * * mon-fri",
                                      "autocomplete": "off", "spellcheck": "false"}),
        help_text="Five fields (minute hour day month weekday) or six (seconds first); it fills the fields below.")

    class Meta:
        model = Trigger
        exclude = ("next_run_at", "last_fired_at")

    @property
    def cron_fields(self):
        """The per-field cron boxes, in the order the template shows them beside the expression."""
        return [self[name] for name in triggers.CRON_FIELDS]

    def clean(self):
        data = super().clean()
        if data.get("kind") == "cron" and data.get("expression", "").strip():
            try:
                data.update(cron_expression.fields_of(data["expression"]))
            except ValidationError as exc:
                self.add_error("expression", exc.messages)
        elif data.get("kind") == "cron" and not any(data.get(name) for name in triggers.CRON_FIELDS):
            # A blank cron row is not a schedule anyone means: say so rather than save or drop it.
            self.add_error("expression", "Type a cron expression or set at least one field (for example hour 6, "
                                         "minute 0); a blank cron trigger is refused.")
        plain = {field.name for field in Trigger._meta.fields if not field.is_relation and not field.primary_key}
        candidate = Trigger(**{name: value for name, value in data.items() if name in plain})
        try:
            triggers.validate(candidate)
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, problems)
        return data


TriggerFormSet = inlineformset_factory(
    Project, Trigger, form=TriggerForm, fk_name="project", extra=1, can_delete=True,
    fields=("kind", "enabled", "time_zone", "jitter_seconds", "start_at", "end_at", "year", "month", "day", "week",
            "day_of_week", "hour", "minute", "second", "every", "unit", "run_at"),
    widgets={name: forms.DateTimeInput(attrs={"type": "datetime-local"}) for name in ("start_at", "end_at", "run_at")},
)
ProjectParameterFormSet = inlineformset_factory(Project, Parameter, form=ParameterForm, fk_name="project",
                                                fields=("key", "value", "sensitive"), extra=1, can_delete=True)
