"""Webhook pages of a task or project: add, change, remove (the editor role, through projects/access.py)."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts.forms import WebhookForm
from alerts.models import Webhook
from projects import access


def _page_of(webhook):
    return webhook.task.get_absolute_url() if webhook.task_id else reverse("projects:detail", args=[webhook.project_id])


def _save(request, webhook, owner):
    form = WebhookForm(request.POST or None, instance=webhook)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Webhook {saved.name} saved.")
        if form.dropped_secret:
            messages.warning(request, "The stored signing secret was removed because the URL changed: enter it "
                                      "again to sign the messages.")
        return redirect(_page_of(saved) + "#webhooks")
    return render(request, "alerts/webhook_form.html", {"form": form, "webhook": webhook, "owner": owner})


def task_webhook_new(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    return _save(request, Webhook(task=task), task)


def project_webhook_new(request, pk):
    project = access.get_project(request.user, pk, access.EDIT)
    return _save(request, Webhook(project=project), project)


def webhook_edit(request, pk):
    webhook = access.get_webhook(request.user, pk, access.EDIT)
    return _save(request, webhook, webhook.owner)


@require_POST
def webhook_delete(request, pk):
    webhook = access.get_webhook(request.user, pk, access.EDIT)
    page = _page_of(webhook)
    webhook.delete()
    messages.success(request, f"Webhook {webhook.name} removed.")
    return redirect(page + "#webhooks")
