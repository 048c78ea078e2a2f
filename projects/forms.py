from crispy_forms.helper import FormHelper
from django import forms
from django.core.exceptions import ValidationError
from django.forms import inlineformset_factory

from projects import triggers
from projects.models import Organization, Parameter, Project, Trigger
from tasks.forms import ParameterForm


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("organization", "name", "description", "owner", "editor_groups", "enabled", "mode", "max_parallel",
                  "time_zone", "missed_runs")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        organizations = Organization.objects.all() if user.is_staff else Organization.objects.filter(members=user)
        self.fields["organization"].queryset = organizations
        if not self.instance.pk:
            self.initial.setdefault("owner", user.pk)
            mine = list(Organization.objects.filter(members=user)[:2])
            if len(mine) == 1:
                self.initial.setdefault("organization", mine[0].pk)
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_time_zone(self):
        import zoneinfo

        name = self.cleaned_data["time_zone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"{name!r} is not a time zone name (for example Europe/London)") from None
        return name


class TriggerForm(forms.ModelForm):
    class Meta:
        model = Trigger
        exclude = ("next_run_at", "last_fired_at")

    def clean(self):
        data = super().clean()
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
