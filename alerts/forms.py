"""The webhook form: the signing secret is write-only, and changing the URL drops it unless it is entered again
(as a connection's secrets: a secret never goes to an address nobody re-entered it for)."""
from urllib.parse import urlsplit

from crispy_forms.helper import FormHelper
from django import forms

from alerts.models import Webhook

KEEP = "Stored; leave blank to keep it. Changing the URL removes it unless you enter it again."


class WebhookForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=1000, assume_scheme="https",
                         help_text="http:// or https://; the body is POSTed here, redirects are not followed.")
    secret = forms.CharField(label="Signing secret", required=False, strip=False,
                             widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                             help_text="Optional: each body is signed with it (header X-ETL-Signature-256).")
    clear_secret = forms.BooleanField(label="Remove the stored signing secret", required=False)

    class Meta:
        model = Webhook
        fields = ("name", "style", "url", "secret", "clear_secret", "on_success", "on_warning", "on_failure",
                  "on_late", "on_missed", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_url = self.instance.url if self.instance.pk else None
        self.stored_secret = self.instance.secret if self.instance.pk else ""
        self.dropped_secret = False
        self.initial["secret"] = ""
        if self.stored_secret:
            self.fields["secret"].label = "Signing secret (stored)"
            self.fields["secret"].help_text = KEEP
        else:
            del self.fields["clear_secret"]
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        if urlsplit(url).scheme not in ("http", "https"):
            raise forms.ValidationError("Enter an http:// or https:// address.")
        return url

    def save(self, commit=True):
        webhook = super().save(commit=False)
        entered = self.cleaned_data.get("secret") or ""
        if self.cleaned_data.get("clear_secret"):
            webhook.secret = ""
        elif entered:
            webhook.secret = entered
        elif self.stored_secret and self.cleaned_data["url"] != self.stored_url:
            webhook.secret = ""
            self.dropped_secret = True
        else:
            webhook.secret = self.stored_secret
        if commit:
            webhook.save()
        return webhook
