"""A task's, project's or organization's webhooks in the API and in tasks as code (api/config.py): the nested
`webhooks` list.

Writes go through the webhook page's own form (alerts/forms.py WebhookForm), so the API keeps exactly its rules:
an http:// or https:// URL only, and its signing-secret rule. The rights are the owner's: a task's or project's
serializer checks them before a list is written (editors), an organization's view its admins, as for every other
nested list.

- Matching: an item is the stored webhook of the same owner with the same `name` (the natural key in a YAML
  file; a name given twice in one list is a 400). A list given replaces the stored one: an item with a new name
  is a new webhook (a rename is one: it starts without a secret), a stored webhook no item names is deleted, and
  a list left out is kept. An item equal to its stored webhook is not saved, so a repeated write adds no history.
  Flags left out of an item take the model's defaults, as for the other nested lists.
- Secret (`secret`, write-only; answers say only `secret_set`): left out (or null), a matched webhook keeps its
  stored secret while its URL is unchanged; when the same write changes its URL, the secret is dropped (a secret
  never goes to an address nobody re-entered it for). A secret given is stored; `""` removes the stored one.
- URL: answers show the whole `url` only to those who may change the webhook (projects/access.webhook_rights: a
  task's or project's editors, an organization's admins), as the page's edit form does;
  anyone else gets the form the pages show, scheme and host only (`https://hooks.slack.com/…`), because the path
  of a Slack or Teams URL is its credential. That shown form is refused on a write, so a viewer's export cannot
  overwrite a real URL.
"""
from django.forms.models import model_to_dict
from rest_framework import serializers

from alerts.forms import WebhookForm
from alerts.models import Webhook, shown_url
from projects import access

FLAGS = ("on_success", "on_warning", "on_failure", "on_late", "on_missed", "enabled")
STATE = ("name", "style", "url", "secret", *FLAGS)  # what a write may change (the comparison for "unchanged")
URL_HELP = ("http:// or https://; the body is POSTed here. Answers give it whole only to those who may change the "
            "webhook (its task's or project's editors, its organization's admins), to others as scheme and host "
            "(https://host/…): a Slack or Teams URL's path is its credential.")
SECRET_HELP = ("Write-only HMAC-SHA256 signing secret. Left out or null: the stored one is kept while the URL stays "
               "the same, and dropped when this write changes the URL. \"\": remove it.")


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook of a task, project or organization. On a write the list replaces the stored one, each item matched
    by `name` (a new name is a new webhook). `secret` is write-only (answers say `secret_set`); `url` is whole only
    for those who may change the webhook."""

    url = serializers.CharField(max_length=1000, help_text=URL_HELP)
    secret = serializers.CharField(write_only=True, required=False, allow_null=True, allow_blank=True,
                                   trim_whitespace=False, max_length=10_000, help_text=SECRET_HELP)
    secret_set = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = ("id", "name", "style", "url", "secret", "secret_set", *FLAGS)

    def get_secret_set(self, webhook) -> bool:
        return bool(webhook.secret)

    def to_representation(self, webhook):
        data = super().to_representation(webhook)
        if not self._may_change(webhook):
            data["url"] = webhook.shown_url
        return data

    def _may_change(self, webhook):
        """Whether the request's user may change the webhook (read once per project or organization)."""
        request = self.context.get("request")
        if request is None:
            return False
        if webhook.organization_id:
            where = ("organization", webhook.organization_id)
        else:
            where = ("project", webhook.task.project_id if webhook.task_id else webhook.project_id)
        known = self.context.setdefault("webhook_changeable", {})
        if where not in known:
            known[where] = access.webhook_rights(request.user, webhook).can_edit
        return known[where]

    def validate(self, attrs):
        form = WebhookForm(data=form_data(attrs))
        if not form.is_valid():
            raise serializers.ValidationError({("non_field_errors" if name == "__all__" else name): list(messages)
                                               for name, messages in form.errors.items()})
        url = form.cleaned_data["url"]
        if url == shown_url(url):
            raise serializers.ValidationError({"url": [
                "This is the URL as shown to viewers (scheme and host only): give the whole URL."]})
        return attrs


def form_data(item):
    """An API item as the webhook form's POST: flags left out take the model's defaults; a secret left out (or
    null) is the blank box (kept, or dropped with a new URL), "" ticks "remove the stored signing secret"."""
    data = model_to_dict(Webhook(), fields=("style", *FLAGS))
    data.update((name, item[name]) for name in ("name", "style", "url", *FLAGS) if name in item)
    secret = item.get("secret")
    data["secret"] = secret or ""
    data["clear_secret"] = secret == ""
    return data


def _state(webhook):
    return tuple(getattr(webhook, name) for name in STATE)


def built(owner, item, webhook=None):
    """The unsaved webhook `item` makes of `webhook` (default: a new one of `owner`), by the form's own save."""
    form = WebhookForm(data=form_data(item), instance=webhook or Webhook(**{owner._meta.model_name: owner}))
    if not form.is_valid():  # validated before (WebhookSerializer.validate); a change meanwhile is still refused
        raise serializers.ValidationError({"webhooks": [form.errors]})
    return form.save(commit=False)


def replace_webhooks(owner, items):
    """Make `owner`'s webhooks equal `items` (validated), matched by name; save only what changed. Returns
    whether a secret changed (what an answer does not show: the bulk must not take such a write for none)."""
    stored = {}
    for webhook in owner.webhooks.all():
        stored.setdefault(webhook.name, webhook)  # a name the pages stored twice: the first matches
    kept, secret_changed = [], False
    for item in items:
        webhook = stored.pop(item["name"], None)
        before = _state(webhook) if webhook is not None else None
        webhook = built(owner, item, webhook)
        if _state(webhook) != before:
            secret_changed |= before is not None and before[STATE.index("secret")] != webhook.secret
            webhook.save()
        kept.append(webhook.pk)
    owner.webhooks.exclude(pk__in=kept).delete()
    return secret_changed


def as_shown_where_hidden(items, shown):
    """`items` (a file's webhooks) with each URL the user is shown only as scheme and host (`shown`, their export of
    the stored webhooks) put in that shown form, so a file exported by someone who sees the whole URL compares
    equal for someone who does not (an organization's webhook, for a project's editor)."""
    hidden = {item["name"]: item["url"] for item in shown if item["url"] == shown_url(item["url"])}
    return [{**item, "url": hidden[item.get("name")]}
            if isinstance(item, dict) and hidden.get(item.get("name")) == shown_url(str(item.get("url", "")))
            else item for item in items or ()]


def losing_secret(stored, items):
    """The names of the `stored` webhooks that writing `items` leaves without their signing secret because the
    item changes the URL and gives no secret (what the form does; the config plan says it before importing)."""
    by_name = {}
    for webhook in stored:
        by_name.setdefault(webhook.name, webhook)
    names = []
    for item in items or ():
        webhook = by_name.get(item.get("name")) if isinstance(item, dict) else None
        if (webhook is not None and webhook.secret and item.get("secret") is None
                and str(item.get("url", "")).strip() != webhook.url):
            names.append(webhook.name)
    return names
