"""The maintenance windows of one connection, edited as a list on their own page (and inline in the admin).

One-off start and end are typed as local date-times and read in the window's zone, so "2026-12-01 22:00
Europe/Berlin" means 22:00 in Berlin whatever zone the editor's browser or profile is in; a new window proposes
the editor's own zone (blank stored as UTC)."""
import datetime

from django import forms
from django.forms import inlineformset_factory
from django.utils import timezone

from connections import maintenance
from connections.models import Connection, MaintenanceWindow

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class MaintenanceWindowForm(forms.ModelForm):
    days = forms.MultipleChoiceField(
        choices=[(str(day), name) for day, name in enumerate(maintenance.DAY_NAMES)], required=False,
        widget=forms.CheckboxSelectMultiple, help_text="Weekly: the days the window starts.")
    start_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                                 help_text="Weekly: from this time of day.")
    end_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                               help_text="Weekly: to this time; at or before the start means the next day.")
    starts_at = forms.DateTimeField(required=False, input_formats=[LOCAL_FORMAT, "%Y-%m-%d %H:%M"],
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_FORMAT),
                                    help_text="Once: from this date and time (in the window's zone).")
    ends_at = forms.DateTimeField(required=False, input_formats=[LOCAL_FORMAT, "%Y-%m-%d %H:%M"],
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_FORMAT),
                                  help_text="Once: until this date and time.")

    class Meta:
        model = MaintenanceWindow
        fields = ("kind", "days", "start_time", "end_time", "starts_at", "ends_at", "time_zone", "note")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        window = self.instance
        if window.pk is None:
            self.initial.setdefault("time_zone", timezone.get_current_timezone_name())
        else:
            self.initial["days"] = list(window.days)
            try:
                tz = maintenance.zone(window.time_zone)
            except forms.ValidationError:
                tz = datetime.timezone.utc
            for name in ("starts_at", "ends_at"):  # shown as the local time in the window's zone
                value = getattr(window, name)
                if value is not None:
                    self.initial[name] = value.astimezone(tz).replace(tzinfo=None).strftime(LOCAL_FORMAT)

    def _zone(self):
        try:
            return maintenance.zone(self.cleaned_data.get("time_zone"))
        except forms.ValidationError:
            return None  # the model's check names the field

    def _local(self, name):
        value = self.cleaned_data.get(name)
        tz = self._zone()
        if value is None or tz is None:
            return value
        return value.replace(tzinfo=None).replace(tzinfo=tz)  # the typed wall time, in the window's zone

    def clean(self):
        cleaned = super().clean()
        cleaned["starts_at"], cleaned["ends_at"] = self._local("starts_at"), self._local("ends_at")
        self.instance.starts_at, self.instance.ends_at = cleaned["starts_at"], cleaned["ends_at"]
        cleaned["days"] = "".join(sorted(set(cleaned.get("days") or ())))
        if cleaned.get("kind") == MaintenanceWindow.Kind.ONCE:  # keep only what the kind uses
            cleaned.update(days="", start_time=None, end_time=None)
        elif cleaned.get("kind") == MaintenanceWindow.Kind.WEEKLY:
            cleaned.update(starts_at=None, ends_at=None)
        return cleaned


WindowFormSet = inlineformset_factory(Connection, MaintenanceWindow, form=MaintenanceWindowForm, extra=1,
                                      can_delete=True)
