"""A dependency form that refuses a link closing a cycle, naming it; for the admin and the task pages."""
from django import forms
from django.core.exceptions import ValidationError

from runs.orchestration import validate_no_cycle
from tasks.models import Dependency


class DependencyForm(forms.ModelForm):
    class Meta:
        model = Dependency
        fields = ("upstream", "downstream", "on")

    def clean(self):
        data = super().clean()
        upstream = data.get("upstream")
        downstream = data.get("downstream") or getattr(self.instance, "downstream", None)
        if upstream is not None and downstream is not None and downstream.pk:
            try:
                validate_no_cycle(upstream, downstream)
            except ValidationError as exc:
                self.add_error("upstream", exc)
        return data
