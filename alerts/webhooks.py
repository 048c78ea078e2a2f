"""Webhook bodies and one POST.

The generic JSON body (documented in README.md, "Channels"):

    {"event": "failure", "delivery": 17, "sent_at": "2026-11-29T06:00:03+00:00",
     "text": "Orders: failed (run #42): <error>",
     "project": {"id": 1, "name": "Vendor feeds"},
     "task": {"id": 3, "name": "Orders", "url": "https://etl.example.com/tasks/3/"},
     "run": {"id": 42, "status": "failed", "trigger": "schedule", "attempt": 1, "scheduled_for": "...",
             "started_at": "...", "finished_at": "...", "duration_seconds": 12.5, "rows": 1000,
             "error": "...", "url": "https://etl.example.com/runs/42/"},
     "alert": null}

`run` is null for a missed start that has no run; `alert` is {"id", "kind", "due_at", "raised_at", "message"}
for the late and missed events. `delivery` stays the same on every retry of one message, so a receiver can drop
a repeat. With a signing secret, `X-ETL-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the
secret>`. Slack gets {"text", "blocks"}, Microsoft Teams an Adaptive Card message; both carry the same text and
link. Every text is masked with the task's secrets (runs/masking.py).

A test message (`send_test`, the webhook row's *Send a test message*) goes through the same POST with the same
headers and signature: {"event": "test", "delivery": null, "text": "Test message from ETL Portal: ...",
"project", "task" (null where the webhook is set above them), "run": null, "alert": null, "webhook": {"id",
"name", "level"}}; Slack and Teams get their shapes of it. It is sent now, with a short timeout, and recorded
nowhere.
"""
import hashlib
import hmac
import json
import time

import requests
from django.conf import settings
from django.utils import timezone

from etl_portal.links import absolute, run_url, task_url
from etl_portal.masking import Masker
from runs.masking import secret_values

SIGNATURE_HEADER = "X-ETL-Signature-256"
WORDS = {"success": "succeeded", "warning": "finished with a warning", "failure": "FAILED", "late": "is LATE",
         "missed": "MISSED its start"}


def _iso(moment):
    return moment.isoformat() if moment else None


def payload(delivery, now=None):
    """The generic body of a delivery (a dict), masked."""
    task, run, alert = delivery.task, delivery.run, delivery.alert
    mask = Masker(secret_values(task))
    text = f"{task.name} {WORDS.get(delivery.event, delivery.event)}"
    if run is not None:
        text += f" (run #{run.pk})"
    if alert is not None:
        text += f": {alert.message}"
    elif run is not None and run.error and delivery.event != "success":
        text += f": {run.error}"
    body = {
        "event": delivery.event, "delivery": delivery.pk, "sent_at": _iso(now or timezone.now()),
        "text": mask(text),
        "project": {"id": task.project_id, "name": task.project.name},
        "task": {"id": task.pk, "name": task.name, "url": task_url(task.pk)},
        "run": None, "alert": None,
    }
    if run is not None:
        body["run"] = {
            "id": run.pk, "status": run.status, "trigger": run.trigger, "attempt": run.attempt,
            "scheduled_for": _iso(run.scheduled_for), "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "duration_seconds": run.duration.total_seconds() if run.duration else None,
            "rows": run.rows, "error": mask(run.error) or None, "url": run_url(run.pk),
        }
    if alert is not None:
        body["alert"] = {"id": alert.pk, "kind": alert.kind, "due_at": _iso(alert.due_at),
                         "raised_at": _iso(alert.raised_at), "message": mask(alert.message)}
    return body


TEST_TEXT = "Test message from ETL Portal"
TEST_TIMEOUT = 5  # seconds: the user waits for the answer on the page


def payload_of_test(webhook, now=None):
    """The generic body of a test message to `webhook` (a dict): no run, no alert, no delivery."""
    task, project = webhook.task, webhook.project or (webhook.task.project if webhook.task_id else None)
    return {
        "event": "test", "delivery": None, "sent_at": _iso(now or timezone.now()),
        "text": f"{TEST_TEXT}: webhook {webhook.name} of the {webhook.level} {webhook.owner.name}",
        "project": {"id": project.pk, "name": project.name} if project else None,
        "task": {"id": task.pk, "name": task.name, "url": task_url(task.pk)} if task else None,
        "run": None, "alert": None,
        "webhook": {"id": webhook.pk, "name": webhook.name, "level": webhook.level,
                    "url": absolute(webhook.page_url)},
    }


def link_of(body):
    return ((body["run"] or {}).get("url") or (body["task"] or {}).get("url")
            or (body.get("webhook") or {}).get("url"))


def slack_body(body):
    link = link_of(body)
    project = f"Project {_slack(body['project']['name'])} · " if body["project"] else ""
    return {"text": f"{body['text']} <{link}|Open>",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack(body['text'])}*"}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                           f"{project}<{link}|Open in ETL Portal>")}]}]}


def _slack(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_body(body):
    facts = [{"title": title.capitalize(), "value": body[title]["name"]}
             for title in ("project", "task") if body[title]]
    if body["run"]:
        facts.append({"title": "Run", "value": f"#{body['run']['id']} ({body['run']['status']})"})
    if body.get("webhook"):  # a test message
        facts.append({"title": "Webhook", "value": f"{body['webhook']['name']} ({body['webhook']['level']})"})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "TextBlock", "text": body["text"], "wrap": True, "weight": "Bolder"},
                     {"type": "FactSet", "facts": facts}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open in ETL Portal", "url": link_of(body)}]}
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def body_for(webhook, generic):
    return {"slack": slack_body, "teams": teams_body}.get(webhook.style, lambda body: body)(generic)


def sign(secret, raw):
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post(webhook, delivery, now=None):
    """POST the delivery's body to its webhook: (HTTP status or None, error text or "", seconds). Never raises;
    the error names neither the URL's path (a Slack or Teams credential) nor the secret."""
    return _send(webhook, payload(delivery, now), {"X-ETL-Delivery": str(delivery.pk)},
                 settings.ETL_CONNECT_TIMEOUT)


def send_test(webhook, now=None):
    """POST a test message to `webhook` now, as `post` sends a delivery (same body style, headers, signature),
    with a short timeout: (HTTP status or None, error text or "", seconds). Never raises; records nothing."""
    return _send(webhook, payload_of_test(webhook, now), {}, min(TEST_TIMEOUT, settings.ETL_CONNECT_TIMEOUT))


def _send(webhook, generic, headers, timeout):
    raw = json.dumps(body_for(webhook, generic), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "ETL-Portal",
               "X-ETL-Event": generic["event"], **headers}
    if webhook.secret:
        headers[SIGNATURE_HEADER] = sign(webhook.secret, raw)
    started = time.monotonic()
    try:
        # No redirects: the body and its signature go to the address the user entered, nowhere else.
        response = requests.post(webhook.url, data=raw, headers=headers, timeout=(timeout, timeout),
                                 allow_redirects=False)
    except requests.RequestException as exc:
        return None, hide_address(webhook, f"{type(exc).__name__}: {exc}"), time.monotonic() - started
    took = time.monotonic() - started
    if 200 <= response.status_code < 300:
        return response.status_code, "", took
    reply = " ".join(response.text[:200].split())
    return response.status_code, hide_address(webhook, f"HTTP {response.status_code}{': ' + reply if reply else ''}"), took


def hide_address(webhook, text):
    from urllib.parse import urlsplit

    parts = urlsplit(webhook.url)
    # The path as typed and as sent (requests quotes it; an error quotes what was sent).
    paths = [parts.path, requests.utils.requote_uri(parts.path)] if parts.path not in ("", "/") else []
    hidden = [webhook.url, webhook.secret, parts.query, *paths]
    return Masker([value for value in hidden if value and len(value) > 1])(text)
