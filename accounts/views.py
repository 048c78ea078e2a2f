import zoneinfo

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from accounts.models import UserPreference


class PreferenceForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        required=False, label="Time zone",
        choices=[("", "The project's zone (the portal's outside projects)")]
        + [(zone, zone) for zone in sorted(zoneinfo.available_timezones())],
        help_text=UserPreference._meta.get_field("time_zone").help_text)

    class Meta:
        model = UserPreference
        fields = ("time_zone",)


def account(request):
    preference, _ = UserPreference.objects.get_or_create(user=request.user)
    form = PreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your settings are saved.")
        return redirect("account:settings")
    return render(request, "accounts/account.html", {"form": form})
