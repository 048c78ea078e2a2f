"""Webhooks at the organization level and the "send a test message" button, against a real HTTP receiver.

Proves that channels add up (a run's failure goes once to each enabled task, project and organization webhook
that wants it, a late alert to the organization's too), that Task Details and the project page list the
inherited ones with their level and a link to where they are set, that only the organization's admins manage
its webhooks from its settings page (the page, the history, the admin), and that a test message goes through
the outbox's POST (same body style and signature, marked "test"), says how it went without a 500, names
neither the URL's path nor the secret, records nothing, and is refused to viewers.
"""
import hashlib
import hmac
import re
import socket
from collections import Counter

import pytest
import requests
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts import outbox
from alerts.models import Alert, Delivery, DeliveryAttempt, Webhook
from runs.models import Run, RunLog
from tests import factories
from tests.fixtures.webhooks import run_now

pytestmark = [pytest.mark.django_db, pytest.mark.servers]  # each test starts its own HTTP receiver
SECRET_PATH = "/services/T1/B2/very-secret-path"


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def row_of(page, webhook):
    """The webhook's row on a page (its <li>)."""
    return re.search(rf'<li[^>]*id="webhook-{webhook.pk}".*?</li>', page, re.S).group(0)


# --- channels add up ---------------------------------------------------------------------------------------

def test_a_failure_goes_once_to_the_organization_project_and_task_webhooks(add_task, project, organization,
                                                                          receiver):
    task = add_task("Broken", failing=True)
    Webhook.objects.create(organization=organization, name="Org", url=receiver.url("/org"))
    Webhook.objects.create(organization=organization, name="Org off", url=receiver.url("/off"), enabled=False)
    Webhook.objects.create(organization=organization, name="Org successes", url=receiver.url("/successes"),
                           on_failure=False, on_success=True)
    Webhook.objects.create(project=project, name="Project", url=receiver.url("/project"))
    Webhook.objects.create(task=task, name="Task", url=receiver.url("/task"))
    other = factories.organization("Globex")
    Webhook.objects.create(organization=other, name="Elsewhere", url=receiver.url("/elsewhere"))

    run = run_now(task)
    assert outbox.send_due() == 3
    assert outbox.send_due() == 0, "each sent once"

    assert run.status == "failed"
    assert Counter(request.path for request in receiver.received) == {"/org": 1, "/project": 1, "/task": 1}
    org_body = next(request.json for request in receiver.received if request.path == "/org")
    assert org_body["event"] == "failure" and org_body["run"]["id"] == run.pk
    assert org_body["project"] == {"id": project.pk, "name": project.name}


def test_a_late_alert_goes_to_the_organization_webhooks_that_want_it(add_task, organization, receiver):
    task = add_task("Orders")
    Webhook.objects.create(organization=organization, name="Late", url=receiver.url("/late"), on_late=True)
    Webhook.objects.create(organization=organization, name="Not late", url=receiver.url("/no"), on_late=False)
    run = Run.objects.create(task=task, status=Run.Status.RUNNING, started_at=timezone.now())
    alert = Alert.objects.create(kind="late", task=task, run=run, due_at=timezone.now(), message="still running")

    outbox.queue_alert(alert)
    outbox.send_due()

    [request] = receiver.received
    assert request.path == "/late" and request.json["event"] == "late"
    assert request.json["alert"]["message"] == "still running"


# --- where they show ---------------------------------------------------------------------------------------

def test_task_and_project_pages_list_the_organization_webhook_with_its_level_and_a_link(
        add_task, project, organization, owner, client, receiver):
    task = add_task("Orders")
    org_hook = Webhook.objects.create(organization=organization, name="Org chat", url=receiver.url(SECRET_PATH))
    project_hook = Webhook.objects.create(project=project, name="Project chat", url=receiver.url())
    task_hook = Webhook.objects.create(task=task, name="Task chat", url=receiver.url())
    client.force_login(owner)  # an editor of the project, not an admin of the organization

    page = client.get(f"/tasks/{task.pk}/").content.decode()
    settings_url = f"/organizations/{organization.pk}/settings/#webhooks"
    org_row = row_of(page, org_hook)
    assert "Org chat" in org_row and ">organization</span>" in org_row
    assert f'href="{settings_url}"' in org_row and f"set on the organization {organization.name}" in org_row
    assert "/edit/" not in org_row and "/test/" not in org_row, "the organization's admins change it"
    assert ">project</span>" in row_of(page, project_hook) and f"/projects/{project.pk}/" in row_of(page,
                                                                                                   project_hook)
    assert "/test/" in row_of(page, project_hook) and "/test/" in row_of(page, task_hook)
    assert ">task</span>" in row_of(page, task_hook) and "set on the" not in row_of(page, task_hook)
    assert page.index("Task chat") < page.index("Project chat") < page.index("Org chat"), "nearest first"
    assert SECRET_PATH not in page

    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="{settings_url}"' in row_of(page, org_hook) and "Task chat" not in page


# --- managed by the organization's admins ------------------------------------------------------------------

def test_an_org_admin_adds_edits_and_removes_an_organization_webhook_from_its_settings_page(
        organization, org_admin, client, receiver):
    client.force_login(org_admin)
    settings_page = f"/organizations/{organization.pk}/settings/"
    page = client.get(settings_page).content.decode()
    assert f'href="/alerts/organizations/{organization.pk}/webhooks/new/"' in page

    form = {"name": "Ops", "style": "json", "url": receiver.url(), "secret": "k-4711", "on_failure": "on",
            "enabled": "on"}
    answer = client.post(f"/alerts/organizations/{organization.pk}/webhooks/new/", form)
    assert answer.status_code == 302 and answer.url == settings_page + "#webhooks"
    webhook = Webhook.objects.get()
    assert (webhook.organization, webhook.project, webhook.task, webhook.level) == (organization, None, None,
                                                                                    "organization")
    assert "Ops" in row_of(client.get(settings_page).content.decode(), webhook)

    answer = client.post(f"/alerts/webhooks/{webhook.pk}/edit/", {**form, "name": "Ops 2", "secret": ""})
    webhook.refresh_from_db()
    assert answer.status_code == 302 and (webhook.name, webhook.secret) == ("Ops 2", "k-4711")
    history = client.get(f"/organizations/{organization.pk}/history/").content.decode()
    assert "webhook" in history and "Ops 2" in history and "k-4711" not in history

    assert client.post(f"/alerts/webhooks/{webhook.pk}/delete/").url == settings_page + "#webhooks"
    assert not Webhook.objects.exists()


def test_a_project_editor_who_is_not_org_admin_may_not_manage_organization_webhooks(
        project, organization, owner, member, outsider, client, receiver):
    webhook = Webhook.objects.create(organization=organization, name="Ops", url=receiver.url())
    form = {"name": "x", "style": "json", "url": receiver.url(), "on_failure": "on", "enabled": "on"}
    for who in (owner, member):
        client.force_login(who)
        assert client.get(f"/alerts/organizations/{organization.pk}/webhooks/new/").status_code == 403
        assert client.post(f"/alerts/organizations/{organization.pk}/webhooks/new/", form).status_code == 403
        assert client.post(f"/alerts/webhooks/{webhook.pk}/edit/", {**form, "name": "y"}).status_code == 403
        assert client.post(f"/alerts/webhooks/{webhook.pk}/test/").status_code == 403
        assert client.post(f"/alerts/webhooks/{webhook.pk}/delete/").status_code == 403
        page = client.get(f"/organizations/{organization.pk}/settings/").content.decode()
        assert "Ops" in page and "Add a webhook" not in page
    client.force_login(outsider)
    assert client.post(f"/alerts/webhooks/{webhook.pk}/delete/").status_code == 404
    assert list(Webhook.objects.values_list("name", flat=True)) == ["Ops"] and receiver.received == []
    assert list(Webhook.objects.visible_to(member)) == [webhook] and not Webhook.objects.visible_to(outsider)


def test_the_admin_lets_only_the_organizations_admins_delete_its_webhooks(organization, owner, org_admin, client,
                                                                          receiver):
    webhook = Webhook.objects.create(organization=organization, name="Org hook", url=receiver.url())
    permissions = Permission.objects.filter(content_type__app_label="alerts")
    for who in (owner, org_admin):
        who.is_staff = True
        who.save()
        who.user_permissions.set(permissions)
    client.force_login(owner)
    assert "Org hook" in client.get("/admin/alerts/webhook/").content.decode()
    client.post(f"/admin/alerts/webhook/{webhook.pk}/delete/", {"post": "yes"})
    assert Webhook.objects.filter(pk=webhook.pk).exists()
    client.force_login(org_admin)
    client.post(f"/admin/alerts/webhook/{webhook.pk}/delete/", {"post": "yes"})
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


def test_a_webhook_belongs_to_exactly_one_level(project, organization):
    with pytest.raises(IntegrityError), transaction.atomic():
        Webhook.objects.create(organization=organization, project=project, name="Both", url="https://x.example/")
    with pytest.raises(IntegrityError), transaction.atomic():
        Webhook.objects.create(name="None", url="https://x.example/")


# --- the test button ---------------------------------------------------------------------------------------

def test_the_test_button_sends_one_signed_test_body_and_says_sent(add_task, owner, client, receiver):
    task = add_task("Orders")
    webhook = Webhook.objects.create(task=task, name="Ops", url=receiver.url("/hooks/etl"), secret="sign-me-4711")
    run_now(task)  # a run to show that the test leaves runs alone
    logged = RunLog.objects.count()
    client.force_login(owner)

    answer = client.post(f"/alerts/webhooks/{webhook.pk}/test/", {"next": f"/tasks/{task.pk}/"}, follow=True)

    assert answer.redirect_chain == [(f"/tasks/{task.pk}/", 302)]
    [said] = messages_of(answer)
    assert re.search(r"Sent: HTTP 200 in \d+\.\d\d s", said), said
    [request] = receiver.received
    body = request.json
    assert body["event"] == "test" and body["delivery"] is None and body["run"] is None
    assert body["text"].startswith("Test message from ETL Portal") and body["task"]["id"] == task.pk
    expected = "sha256=" + hmac.new(b"sign-me-4711", request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-ETL-Signature-256"] == expected and request.headers["X-ETL-Event"] == "test"
    assert not Delivery.objects.exists() and not DeliveryAttempt.objects.exists()
    assert RunLog.objects.count() == logged


@pytest.mark.parametrize("style", ["slack", "teams"])
def test_an_organization_slack_or_teams_webhook_gets_its_own_shape_of_the_test(organization, org_admin, client,
                                                                               receiver, style):
    webhook = Webhook.objects.create(organization=organization, name="Chat", style=style, url=receiver.url())
    client.force_login(org_admin)
    answer = client.post(f"/alerts/webhooks/{webhook.pk}/test/", follow=True)
    assert "Sent: HTTP 200" in messages_of(answer)[0]
    assert answer.redirect_chain[-1][0] == f"/organizations/{organization.pk}/settings/"
    raw = receiver.received[0].raw.decode()
    assert "Test message from ETL Portal" in raw and f"/organizations/{organization.pk}/settings/" in raw


def failed_test(client, webhook):
    answer = client.post(f"/alerts/webhooks/{webhook.pk}/test/")
    assert answer.status_code == 302
    said = messages_of(client.get(answer.url))
    assert len(said) == 1 and "Failed: " in said[0], said
    for hidden in (SECRET_PATH, "very-secret-path", "sign-me-4711"):
        assert hidden not in said[0]
    assert not Delivery.objects.exists()
    return said[0]


def test_a_failing_receiver_or_a_closed_port_says_failed_without_path_or_secret(add_task, owner, client, receiver,
                                                                                closed_port):
    task = add_task("Orders")
    client.force_login(owner)
    receiver.always = 500
    webhook = Webhook.objects.create(task=task, name="Ops", url=receiver.url(SECRET_PATH), secret="sign-me-4711")
    assert "Failed: HTTP 500: receiver says no" in failed_test(client, webhook)
    assert len(receiver.received) == 1, "tried once, not retried"

    webhook.url = f"http://127.0.0.1:{closed_port}{SECRET_PATH}"
    webhook.save()
    assert "ConnectionError" in failed_test(client, webhook)


def test_a_timeout_and_a_dns_error_say_failed_too(add_task, owner, client, settings, monkeypatch):
    task = add_task("Orders")
    client.force_login(owner)
    settings.ETL_CONNECT_TIMEOUT = 0.3
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        webhook = Webhook.objects.create(task=task, name="Ops", secret="sign-me-4711",
                                         url=f"http://127.0.0.1:{silent.getsockname()[1]}{SECRET_PATH}")
        assert "Timeout" in failed_test(client, webhook)

    def unresolvable(url, **kwargs):
        raise requests.ConnectionError(f"Failed to resolve 'hooks.invalid' for url: {SECRET_PATH}")

    monkeypatch.setattr(requests, "post", unresolvable)
    assert "Failed to resolve" in failed_test(client, webhook)


def test_viewers_may_not_send_a_test_and_get_is_not_allowed(project, member, owner, client, receiver):
    webhook = Webhook.objects.create(project=project, name="Ops", url=receiver.url())
    client.force_login(member)
    assert client.post(f"/alerts/webhooks/{webhook.pk}/test/").status_code == 403
    assert "/test/" not in client.get(f"/projects/{project.pk}/").content.decode()
    client.force_login(owner)
    assert client.get(f"/alerts/webhooks/{webhook.pk}/test/").status_code == 405
    assert receiver.received == []
