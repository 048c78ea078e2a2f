"""Webhooks through the REST API and tasks as code (api/webhooks.py, api/config.py), as a script or a reviewer sees
them: a task's, a project's and an organization's `webhooks` list is written like the other nested lists (a list
given replaces the stored one, matched by name; left out, kept; the same write twice saves nothing); the signing
secret never comes back and follows the page's rule (kept while the URL stays, dropped when a write moves the URL
without it); only those who may change the webhook (an organization's: its admins) read the whole URL (its path is a
credential); the export holds webhooks without secrets, re-importing it changes nothing, and a plan says when an
import drops a secret. The last test sends a real run's message to a webhook made through the API."""
import hashlib
import hmac

import pytest
from rest_framework.test import APIClient

from alerts import outbox
from alerts.models import Webhook
from api.config import export_config, import_config, plan
from tests.fixtures.webhooks import run_now

pytestmark = [pytest.mark.django_db]
SLACK = "https://hooks.slack.example/services/T01/B02/credential-path"
TEAMS = "https://teams.example/workflows/abc/credential-too"
ORGANIZATION_HOOK = "https://alerts.example/etl/company"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def ops(**changes):
    return {"name": "Ops", "style": "slack", "url": SLACK, "secret": "sign-4711", "on_success": True, **changes}


@pytest.fixture
def task(add_task):
    return add_task("Orders")


def patch_task(user, task, body):
    return api(user).patch(f"/api/v1/tasks/{task.pk}/", body, format="json")


def test_a_task_gets_webhooks_and_the_secret_never_comes_back(task, owner):
    answer = patch_task(owner, task, {"webhooks": [ops(), {"name": "Audit", "url": TEAMS, "style": "teams"}]})

    assert answer.status_code == 200, answer.content
    assert [(hook["name"], hook["style"], hook["url"], hook["secret_set"]) for hook in answer.json()["webhooks"]] == [
        ("Audit", "teams", TEAMS, False), ("Ops", "slack", SLACK, True)]
    audit = answer.json()["webhooks"][0]
    assert (audit["on_success"], audit["on_warning"], audit["on_failure"], audit["enabled"]) == (False, True, True,
                                                                                                True), "defaults"
    listed = api(owner).get("/api/v1/tasks/")
    for response in (answer, api(owner).get(f"/api/v1/tasks/{task.pk}/"), listed):
        assert "sign-4711" not in response.content.decode()
    for hook in answer.json()["webhooks"] + listed.json()["results"][0]["webhooks"]:
        assert "secret" not in hook
    stored = Webhook.objects.get(name="Ops")
    assert (stored.task, stored.secret, stored.events) == (task, "sign-4711", ["success", "warning", "failure",
                                                                               "late", "missed"])

    # A new task with its webhooks in one POST.
    body = {"project": task.project_id, "name": "Refunds", "source_kind": "query",
            "source_connection": task.source_connection_id, "query": "SELECT 1", "webhooks": [ops()]}
    created = api(owner).post("/api/v1/tasks/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["webhooks"][0]["secret_set"] is True and "sign-4711" not in created.content.decode()
    assert Webhook.objects.get(task__name="Refunds").secret == "sign-4711"


def test_a_list_given_replaces_the_stored_one_and_a_list_left_out_is_kept(task, owner):
    first = patch_task(owner, task, {"webhooks": [ops(), {"name": "Audit", "url": TEAMS}]}).json()["webhooks"]
    kept_id = next(hook["id"] for hook in first if hook["name"] == "Ops")

    assert patch_task(owner, task, {"priority": 40}).json()["webhooks"] == first
    answer = patch_task(owner, task, {"webhooks": [ops(secret=None, on_failure=False)]})

    assert [(hook["id"], hook["name"], hook["on_failure"], hook["secret_set"])
            for hook in answer.json()["webhooks"]] == [(kept_id, "Ops", False, True)]
    assert Webhook.objects.get().secret == "sign-4711", "matched by name, same URL: the secret is kept"
    assert patch_task(owner, task, {"webhooks": []}).json()["webhooks"] == [] and not Webhook.objects.exists()


def test_the_secret_follows_the_url_as_on_the_page(task, owner):
    patch_task(owner, task, {"webhooks": [ops()]})
    hook = Webhook.objects.get()

    def write(**changes):
        item = ops(**changes)
        if changes.get("secret", "") is None:
            del item["secret"]  # left out, as a script that never knew it would send it
        answer = patch_task(owner, task, {"webhooks": [item]})
        assert answer.status_code == 200, answer.content
        hook.refresh_from_db()
        return answer.json()["webhooks"][0]["secret_set"]

    assert write(secret=None) is True and hook.secret == "sign-4711", "same URL, no secret given: kept"
    assert write(secret=None, url=TEAMS) is False and (hook.url, hook.secret) == (TEAMS, ""), "moved: dropped"
    assert write(secret="new-key", url=SLACK) is True and (hook.url, hook.secret) == (SLACK, "new-key")
    assert write(secret="") is False and hook.secret == "", "\"\" removes it"
    assert Webhook.objects.get().pk == hook.pk


def test_a_project_has_webhooks_too(project, owner, member):
    answer = api(owner).patch(f"/api/v1/projects/{project.pk}/", {"webhooks": [ops()]}, format="json")

    assert answer.status_code == 200, answer.content
    assert answer.json()["webhooks"][0]["url"] == SLACK and answer.json()["webhooks"][0]["secret_set"] is True
    assert Webhook.objects.get(project=project).secret == "sign-4711"
    listed = api(member).get("/api/v1/projects/").json()["results"][0]["webhooks"]
    assert listed[0]["url"] == "https://hooks.slack.example/…"
    moved = api(owner).patch(f"/api/v1/projects/{project.pk}/", {"webhooks": [ops(secret=None, url=TEAMS)]},
                             format="json")
    assert moved.json()["webhooks"][0]["secret_set"] is False and Webhook.objects.get().secret == ""


def test_a_viewer_may_not_write_webhooks_nor_read_the_url_path(task, project, owner, member):
    patch_task(owner, task, {"webhooks": [ops()]})
    api(owner).patch(f"/api/v1/projects/{project.pk}/", {"webhooks": [ops(url=TEAMS)]}, format="json")
    viewer = api(member)

    assert patch_task(member, task, {"webhooks": []}).status_code == 403
    assert viewer.patch(f"/api/v1/projects/{project.pk}/", {"webhooks": [ops(url="https://evil.example/x")]},
                        format="json").status_code == 403
    assert Webhook.objects.count() == 2 and Webhook.objects.get(project=project).url == TEAMS
    for path in (f"/api/v1/tasks/{task.pk}/", "/api/v1/tasks/", f"/api/v1/projects/{project.pk}/",
                 "/api/v1/projects/", "/api/v1/config/export/"):
        text = viewer.get(path).content.decode()
        assert "credential" not in text and "sign-4711" not in text, path
    shown = viewer.get(f"/api/v1/tasks/{task.pk}/").json()["webhooks"][0]
    assert (shown["url"], shown["secret_set"]) == ("https://hooks.slack.example/…", True)
    assert api(owner).get(f"/api/v1/tasks/{task.pk}/").json()["webhooks"][0]["url"] == SLACK
    # That shown form is not a URL to write back (a viewer's export imported by an editor keeps the real one).
    refused = patch_task(owner, task, {"webhooks": [ops(url="https://hooks.slack.example/…")]})
    assert refused.status_code == 400 and refused.json() == {"webhooks": {"0": {"url": [
        "This is the URL as shown to viewers (scheme and host only): give the whole URL."]}}}
    assert Webhook.objects.get(task=task).url == SLACK


@pytest.mark.parametrize("url, message", [
    ("ftp://files.example/drop", "Enter an http:// or https:// address."),
    ("javascript:alert(1)", "Enter a valid URL."),
    ("file:///etc/passwd", "Enter a valid URL."),
])
def test_a_url_that_is_not_http_is_a_400_naming_the_field(task, owner, url, message):
    answer = patch_task(owner, task, {"webhooks": [ops(), {"name": "Bad", "url": url}]})

    assert answer.status_code == 400
    assert answer.json() == {"webhooks": {"1": {"url": [message]}}}
    assert not Webhook.objects.exists()


def test_a_name_twice_is_a_400(task, owner):
    answer = patch_task(owner, task, {"webhooks": [ops(), ops(url=TEAMS)]})
    assert answer.status_code == 400
    assert answer.json() == {"webhooks": {"1": {"name": ["Given twice in this list."]}}}


def test_the_same_patch_again_saves_nothing(task, owner):
    first = patch_task(owner, task, {"webhooks": [ops(), {"name": "Audit", "url": TEAMS}]}).json()["webhooks"]
    records = Webhook.history.count()

    # What GET answers, sent back as it is (id and secret_set are read-only), in either order.
    for webhooks in (first, first[::-1]):
        again = patch_task(owner, task, {"webhooks": webhooks})
        assert again.status_code == 200 and again.json()["webhooks"] == first
    assert Webhook.history.count() == records
    assert Webhook.objects.get(name="Ops").secret == "sign-4711"


def test_the_bulk_creates_webhooks_and_a_new_secret_alone_is_an_update(task, owner):
    item = {"project": task.project_id, "name": "Refunds", "source_kind": "query",
            "source_connection": task.source_connection_id, "query": "SELECT 1", "webhooks": [ops()]}
    bulk = api(owner)

    assert bulk.post("/api/v1/tasks/bulk/", [item], format="json").json()["created"] == 1
    hook = Webhook.objects.get(task__name="Refunds")
    assert hook.secret == "sign-4711" and hook.history.count() == 1
    answer = bulk.post("/api/v1/tasks/bulk/", [{**item, "webhooks": [ops(secret="rotated")]}], format="json")
    assert answer.json()["updated"] == 1, "only the secret changed, which no answer shows: still an update"
    hook.refresh_from_db()
    assert hook.secret == "rotated"
    again = bulk.post("/api/v1/tasks/bulk/", [{**item, "webhooks": [ops(secret=None)]}], format="json")
    assert again.json()["unchanged"] == 1 and Webhook.objects.get().secret == "rotated"


def test_an_organization_has_webhooks_its_admins_write(organization, project, org_admin, owner, member):
    path = f"/api/v1/organizations/{organization.pk}/"

    answer = api(org_admin).patch(path, {"webhooks": [ops()]}, format="json")

    assert answer.status_code == 200, answer.content
    assert (answer.json()["webhooks"][0]["url"], answer.json()["webhooks"][0]["secret_set"]) == (SLACK, True)
    assert "sign-4711" not in answer.content.decode()
    hook = Webhook.objects.get()
    assert (hook.organization, hook.project, hook.task, hook.secret) == (organization, None, None, "sign-4711")
    # A project's editor is no admin of the organization: refused, and shown the URL as viewers see it.
    assert api(owner).patch(path, {"webhooks": []}, format="json").status_code == 403
    for user in (owner, member):
        shown = api(user).get(path).json()["webhooks"][0]
        assert (shown["url"], shown["secret_set"]) == ("https://hooks.slack.example/…", True)
    assert Webhook.objects.get().url == SLACK
    moved = api(org_admin).patch(path, {"webhooks": [ops(secret=None, url=TEAMS)]}, format="json")
    assert moved.json()["webhooks"][0]["secret_set"] is False and Webhook.objects.get().secret == ""


# --- tasks as code -------------------------------------------------------------------------------------------

@pytest.fixture
def hooked(task, project, owner, org_admin):
    """A task with a signed Slack webhook and an unsigned one; its project with a signed Teams webhook; its
    organization with a signed generic one."""
    patch_task(owner, task, {"webhooks": [ops(), {"name": "Audit", "url": "https://audit.example/in"}]})
    api(owner).patch(f"/api/v1/projects/{project.pk}/", {"webhooks": [ops(name="Team", url=TEAMS, style="teams",
                                                                          secret="team-key")]}, format="json")
    api(org_admin).patch(f"/api/v1/organizations/{project.organization_id}/", {"webhooks": [
        ops(name="Company", url=ORGANIZATION_HOOK, style="json", secret="company-key")]}, format="json")
    return task


def test_the_export_holds_webhooks_without_their_secrets(hooked, owner, org_admin):
    text = export_config(org_admin)

    assert "sign-4711" not in text and "team-key" not in text and "company-key" not in text and "secret" not in text
    assert f"url: {SLACK}" in text and f"url: {TEAMS}" in text and "name: Audit" in text
    assert "style: teams" in text and "on_success: true" in text
    assert f"url: {ORGANIZATION_HOOK}" in text and "name: Company" in text
    # A project's editor exports the organization's webhook as the pages show it to them.
    assert f"url: {ORGANIZATION_HOOK}" not in export_config(owner) and "url: https://alerts.example/…" in export_config(
        owner)


def test_importing_the_export_again_changes_nothing(hooked, owner, org_admin):
    records = Webhook.history.count()

    for user in (owner, org_admin):
        text = export_config(user)
        assert plan(user, text) == ["No changes."]
        import_config(user, text)
    # The admin's file, with the organization's whole URL, is no change for an editor who sees it shortened.
    assert plan(owner, export_config(org_admin)) == ["No changes."]
    import_config(owner, export_config(org_admin))

    assert Webhook.history.count() == records
    assert dict(Webhook.objects.values_list("name", "secret")) == {"Ops": "sign-4711", "Audit": "",
                                                                  "Team": "team-key", "Company": "company-key"}


def test_an_import_that_moves_a_webhook_drops_its_secret_and_the_plan_says_so(hooked, org_admin):
    owner = org_admin  # who may change every level's webhooks
    moved = export_config(owner).replace(SLACK, "https://hooks.slack.example/services/T01/B02/another-channel")
    moved = moved.replace(TEAMS, "https://teams.example/workflows/abc/moved")
    moved = moved.replace(ORGANIZATION_HOOK, "https://alerts.example/etl/moved")
    warnings = [line for line in plan(owner, moved) if line.startswith("!")]

    assert "~ task Acme Analytics/Vendor feeds/Orders: webhooks" in plan(owner, moved)
    assert "~ organization Acme Analytics: webhooks" in plan(owner, moved)
    assert warnings == [
        "! organization Acme Analytics: webhook Company gets a new URL, so its signing secret is removed (give "
        "`secret` with the new URL to keep signing)",
        "! project Acme Analytics/Vendor feeds: webhook Team gets a new URL, so its signing secret is removed (give "
        "`secret` with the new URL to keep signing)",
        "! task Acme Analytics/Vendor feeds/Orders: webhook Ops gets a new URL, so its signing secret is removed "
        "(give `secret` with the new URL to keep signing)"]
    assert Webhook.objects.get(name="Ops").secret == "sign-4711", "a plan changes nothing"

    done = import_config(owner, moved)

    assert [line for line in done if line.startswith("!")] == warnings
    assert dict(Webhook.objects.values_list("name", "secret")) == {"Ops": "", "Audit": "", "Team": "", "Company": ""}
    assert Webhook.objects.get(name="Ops").url.endswith("/another-channel")
    # The secret given with the new URL in the file: kept, and nothing to warn about.
    signed = export_config(owner).replace("url: https://audit.example/in",
                                          "url: https://audit.example/v2\n      secret: audit-key")
    assert not [line for line in plan(owner, signed) if line.startswith("!")]
    import_config(owner, signed)
    assert Webhook.objects.get(name="Audit").secret == "audit-key"


# --- end to end ----------------------------------------------------------------------------------------------

@pytest.mark.servers
def test_a_webhook_made_through_the_api_gets_the_runs_message(task, owner, receiver):  # noqa: F811
    answer = patch_task(owner, task, {"webhooks": [{"name": "Receiver", "url": receiver.url("/from-api"),
                                                    "on_success": True, "secret": "e2e-key"}]})
    assert answer.status_code == 200, answer.content

    run = run_now(task)
    assert outbox.send_due() == 1

    [request] = receiver.received
    assert request.path == "/from-api" and run.status == "succeeded"
    assert request.json["event"] == "success" and request.json["run"]["id"] == run.pk
    expected = "sha256=" + hmac.new(b"e2e-key", request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-ETL-Signature-256"] == expected
