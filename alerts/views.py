"""Webhook pages of a task, project or organization: add, change, remove, send a test message.

Rights come from projects/access.py: a task's or project's webhooks need the editor role there, an
organization's the organization's admin role (`webhook_rights`)."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from alerts import webhooks
from alerts.forms import WebhookForm
from alerts.models import Webhook
from etl_portal.web import safe_next
from projects import access

MAX_ERROR = 300  # characters of a failed test's error shown in the message


def _save(request, webhook, owner):
    form = WebhookForm(request.POST or None, instance=webhook)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Webhook {saved.name} saved.")
        if form.dropped_secret:
            messages.warning(request, "The stored signing secret was removed because the URL changed: enter it "
                                      "again to sign the messages.")
        return redirect(saved.page_url + "#webhooks")
    return render(request, "alerts/webhook_form.html", {"form": form, "webhook": webhook, "owner": owner,
                                                        "back_url": webhook.page_url + "#webhooks"})


def task_webhook_new(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    return _save(request, Webhook(task=task), task)


def project_webhook_new(request, pk):
    project = access.get_project(request.user, pk, access.EDIT)
    return _save(request, Webhook(project=project), project)


def organization_webhook_new(request, pk):
    organization = access.get_organization(request.user, pk, access.MANAGE)
    return _save(request, Webhook(organization=organization), organization)


def webhook_edit(request, pk):
    webhook = access.get_webhook(request.user, pk, access.EDIT)
    return _save(request, webhook, webhook.owner)


@require_POST
def webhook_delete(request, pk):
    webhook = access.get_webhook(request.user, pk, access.EDIT)
    page = webhook.page_url
    webhook.delete()
    messages.success(request, f"Webhook {webhook.name} removed.")
    return redirect(page + "#webhooks")


@require_POST
def webhook_test(request, pk):
    """Send one test message now and say how it went; back to the page the button was on. Nothing is recorded."""
    webhook = access.get_webhook(request.user, pk, access.EDIT)
    status_code, error, seconds = webhooks.send_test(webhook)
    if error:
        shown = error if len(error) <= MAX_ERROR else error[:MAX_ERROR] + "…"
        messages.error(request, f"Test message to {webhook.name}: Failed: {shown}")
    else:
        messages.success(request, f"Test message to {webhook.name}: Sent: HTTP {status_code} in {seconds:.2f} s")
    return safe_next(request, webhook.page_url)  # the page the button was on, where the message shows
