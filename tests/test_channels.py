"""Webhooks (alerts/webhooks.py, alerts/outbox.py) against a real HTTP receiver on 127.0.0.1: the documented
body, the HMAC signature, Slack and Teams shapes, retries with back-off, and a failing receiver that never
touches the run's outcome. Also the webhook pages' rights and the signing secret's write-only rules."""
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.utils import timezone

from alerts import outbox
from alerts.models import MAX_ATTEMPTS, RETRY_DELAYS, Delivery, DeliveryAttempt, Webhook
from tests.fixtures.delivery import log_text
from tests.fixtures.webhooks import run_now

pytestmark = [pytest.mark.django_db, pytest.mark.servers]  # each test starts its own HTTP receiver
BASE = "https://etl.example.com"


@pytest.fixture(autouse=True)
def base_url(settings):
    settings.ETL_BASE_URL = BASE


def hook(owner, url, **fields):
    owner_field = "task" if owner.__class__.__name__ == "Task" else "project"
    return Webhook.objects.create(**{owner_field: owner}, name=fields.pop("name", "Ops"), url=url, **fields)


def test_a_success_posts_the_documented_body_signed_after_the_run_not_during_it(add_task, receiver):
    task = add_task("Orders")
    hook(task, receiver.url("/hooks/etl"), on_success=True, secret="sign-me-4711")

    run = run_now(task)

    assert run.status == "succeeded"
    assert receiver.received == [], "the worker only queues; the housekeeping leader sends"
    assert outbox.send_due() == 1
    [request] = receiver.received
    body = request.json
    assert request.path == "/hooks/etl"
    assert body["event"] == "success" and body["alert"] is None
    assert body["task"] == {"id": task.pk, "name": "Orders", "url": f"{BASE}/tasks/{task.pk}/"}
    assert body["project"] == {"id": task.project_id, "name": task.project.name}
    assert body["run"]["id"] == run.pk and body["run"]["status"] == "succeeded" and body["run"]["rows"] == 3
    assert body["run"]["url"] == f"{BASE}/runs/{run.pk}/"
    assert body["text"] == f"Orders succeeded (run #{run.pk})"
    assert body["delivery"] == Delivery.objects.get().pk
    expected = "sha256=" + hmac.new(b"sign-me-4711", request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-ETL-Signature-256"] == expected
    assert request.headers["X-ETL-Event"] == "success"
    assert "sign-me-4711" not in request.raw.decode()
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.status_code, attempt.error) == (200, "")
    assert Delivery.objects.get().status == "sent"
    assert "The success message to webhook Ops was sent (HTTP 200)" in log_text(run)
    assert outbox.send_due() == 0, "sent once"


def test_a_failure_goes_to_the_task_and_project_webhooks_that_want_it(add_task, project, receiver):
    task = add_task("Broken", failing=True)
    hook(task, receiver.url("/task"), name="Task hook")
    hook(project, receiver.url("/project"), name="Project hook")
    hook(project, receiver.url("/successes"), name="Successes only", on_failure=False, on_success=True)
    hook(task, receiver.url("/off"), name="Switched off", enabled=False)

    run = run_now(task)
    outbox.send_due()

    assert run.status == "failed"
    assert sorted(request.path for request in receiver.received) == ["/project", "/task"]
    body = receiver.received[0].json
    assert body["event"] == "failure" and "no such table" in body["run"]["error"]
    assert body["text"].startswith(f"Broken FAILED (run #{run.pk}): ")


def test_a_failing_receiver_is_retried_with_back_off_then_given_up_and_the_run_stays_succeeded(add_task, receiver,
                                                                                             client, owner):
    receiver.always = 500
    task = add_task("Orders")
    hook(task, receiver.url("/hook/T0001/B0002/xoxb-credential"), on_success=True)
    run = run_now(task)
    now = timezone.now()

    assert outbox.send_due(now) == 1
    assert outbox.send_due(now) == 0, "not again before its back-off"
    assert outbox.send_due(now + dt.timedelta(seconds=RETRY_DELAYS[0] - 1)) == 0
    for delay in RETRY_DELAYS:
        now += dt.timedelta(seconds=delay)
        assert outbox.send_due(now) == 1
    assert outbox.send_due(now + dt.timedelta(days=1)) == 0, "given up after the last attempt"

    assert len(receiver.received) == MAX_ATTEMPTS == 5
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 5)
    assert list(delivery.tries.values_list("status_code", flat=True)) == [500] * 5
    assert delivery.tries.first().error == "HTTP 500: receiver says no"
    run.refresh_from_db()
    assert run.status == "succeeded" and run.error == ""
    log = log_text(run)
    assert "failed (attempt 1 of 5): HTTP 500: receiver says no; trying again in 10 s" in log
    assert "was not delivered after 5 attempts: HTTP 500" in log
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count("HTTP 500 HTTP 500: receiver says no") == 5 and "Failed" in page
    assert "xoxb-credential" not in page


def test_a_receiver_that_recovers_gets_the_message_on_the_next_attempt(add_task, receiver):
    receiver.replies = [503]
    task = add_task("Orders")
    hook(task, receiver.url(), on_success=True)
    run_now(task)
    now = timezone.now()
    outbox.send_due(now)
    outbox.send_due(now + dt.timedelta(seconds=RETRY_DELAYS[0]))
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert [request.json["delivery"] for request in receiver.received] == [delivery.pk] * 2, "the same id: dedupe"


def test_a_receiver_that_is_not_there_is_an_error_naming_neither_path_nor_secret(add_task, closed_port):
    task = add_task("Orders")
    hook(task, f"http://127.0.0.1:{closed_port}/services/T1/B2/very-secret-path", on_success=True, secret="k")
    run = run_now(task)
    outbox.send_due()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and "ConnectionError" in attempt.error
    assert "very-secret-path" not in attempt.error and "very-secret-path" not in log_text(run)
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_slack_and_teams_get_their_own_shapes_with_the_link(add_task, receiver):
    task = add_task("Broken", failing=True)
    hook(task, receiver.url("/slack"), style="slack", name="Slack")
    hook(task, receiver.url("/teams"), style="teams", name="Teams")
    run = run_now(task)
    outbox.send_due()
    bodies = {request.path: request.json for request in receiver.received}
    link = f"{BASE}/runs/{run.pk}/"
    slack = bodies["/slack"]
    assert slack["text"].startswith(f"Broken FAILED (run #{run.pk})") and slack["text"].endswith(f"<{link}|Open>")
    assert f"<{link}|Open in ETL Portal>" in json.dumps(slack["blocks"])
    [attachment] = bodies["/teams"]["attachments"]
    card = attachment["content"]
    assert bodies["/teams"]["type"] == "message" and card["type"] == "AdaptiveCard"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in ETL Portal", "url": link}]
    assert card["body"][0]["text"].startswith("Broken FAILED")


def test_a_sensitive_parameter_in_an_error_is_masked_in_the_body(add_task, receiver):
    from projects.models import Parameter

    task = add_task("Broken", failing=True)
    Parameter.objects.create(task=task, key="token", value="no_such_table", sensitive=True)
    hook(task, receiver.url())
    run_now(task)
    outbox.send_due()
    raw = receiver.received[0].raw.decode()
    assert "no_such_table" not in raw and "********" in raw


# --- the pages -----------------------------------------------------------------------------------------------

def test_an_editor_adds_a_signed_webhook_and_the_secret_is_never_shown_again(add_task, owner, client, receiver):
    task = add_task("Orders")
    client.force_login(owner)
    answer = client.post(f"/alerts/tasks/{task.pk}/webhooks/new/", {
        "name": "Ops", "style": "json", "url": receiver.url(), "secret": "s3cret-Signing-Key", "on_failure": "on",
        "enabled": "on"})
    assert answer.status_code == 302
    webhook = Webhook.objects.get()
    assert webhook.secret == "s3cret-Signing-Key" and webhook.task == task and webhook.events == ["failure"]
    for page in (f"/tasks/{task.pk}/", f"/alerts/webhooks/{webhook.pk}/edit/"):
        html = client.get(page).content.decode()
        assert "s3cret-Signing-Key" not in html
    assert "127.0.0.1" in client.get(f"/tasks/{task.pk}/").content.decode()

    # Saved again with the box blank: kept. The URL changed without the secret: dropped, and the user is told.
    form = {"name": "Ops", "style": "json", "url": receiver.url(), "secret": "", "on_failure": "on", "enabled": "on"}
    client.post(f"/alerts/webhooks/{webhook.pk}/edit/", form)
    webhook.refresh_from_db()
    assert webhook.secret == "s3cret-Signing-Key"
    answer = client.post(f"/alerts/webhooks/{webhook.pk}/edit/",
                         {**form, "url": "https://elsewhere.example/T0/B1/xyzzy-credential"}, follow=True)
    webhook.refresh_from_db()
    assert webhook.url == "https://elsewhere.example/T0/B1/xyzzy-credential" and webhook.secret == ""
    assert "signing secret was removed because the URL changed" in answer.content.decode()
    # Moved with the secret entered again in the same save: kept.
    client.post(f"/alerts/webhooks/{webhook.pk}/edit/", {**form, "url": receiver.url(), "secret": "again-4711"})
    webhook.refresh_from_db()
    assert (webhook.url, webhook.secret) == (receiver.url(), "again-4711")

    # The task's History: who changed the webhook, the secret only as set/changed, the URL as scheme and host.
    history = client.get(f"/tasks/{task.pk}/history/").content.decode()
    assert "webhook" in history and "Ops" in history and "https://elsewhere.example/…" in history
    for secret in ("s3cret-Signing-Key", "again-4711", "xyzzy-credential"):
        assert secret not in history

def test_a_webhook_url_must_be_http(add_task, owner, client):
    task = add_task("Orders")
    client.force_login(owner)
    answer = client.post(f"/alerts/tasks/{task.pk}/webhooks/new/", {"name": "x", "style": "json",
                                                                   "url": "file:///etc/passwd"})
    assert answer.status_code == 200 and not Webhook.objects.exists()


def test_viewers_may_not_change_webhooks_and_outsiders_do_not_see_them(add_task, project, member, outsider, client,
                                                                      receiver):
    task = add_task("Orders")
    webhook = hook(project, receiver.url())
    form = {"name": "x", "style": "json", "url": receiver.url()}
    client.force_login(member)
    assert client.post(f"/alerts/tasks/{task.pk}/webhooks/new/", form).status_code == 403
    assert client.post(f"/alerts/projects/{project.pk}/webhooks/new/", form).status_code == 403
    assert client.post(f"/alerts/webhooks/{webhook.pk}/delete/").status_code == 403
    assert "Add a webhook" not in client.get(f"/tasks/{task.pk}/").content.decode()
    client.force_login(outsider)
    assert client.get(f"/alerts/webhooks/{webhook.pk}/edit/").status_code == 404
    assert client.post(f"/alerts/webhooks/{webhook.pk}/delete/").status_code == 404
    assert Webhook.objects.count() == 1
