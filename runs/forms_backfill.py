"""The backfill form of the task and project pages: a date range and how many dates run at once."""
import uuid

from django import forms

from runs.backfill import MAX_IN_FLIGHT


class BackfillForm(forms.Form):
    first_date = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="The first date the runs stand for (their {today}).")
    last_date = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                help_text="Blank: the first date alone.")
    max_dates = forms.IntegerField(label="Dates at once", min_value=1, max_value=MAX_IN_FLIGHT, initial=1,
                                   help_text="How many dates may run at the same time; earlier dates start first.")
    # The one-time token of the confirm form: a second submit of it finds the batch the first one started.
    token = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def clean(self):
        data = super().clean()
        if data.get("first_date") and not data.get("last_date"):
            data["last_date"] = data["first_date"]
        return data

    @staticmethod
    def new_token():
        return uuid.uuid4().hex
