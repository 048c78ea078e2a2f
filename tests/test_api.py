"""The REST API as a script sees it: tokens, task writes with every setting, bulk upsert, runs, docs."""
import re

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from api.models import ApiToken, hash_key
from tasks.models import Task
from tests.test_access_pages import world  # noqa: F401

pytestmark = pytest.mark.django_db


def token_client(user):
    _, key = ApiToken.issue(user, "script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, key


def test_a_token_is_shown_once_stored_hashed_and_revocable(client, world):  # noqa: F811
    editor = world["users"]["editor"]
    client.force_login(editor)
    page = client.post("/account/tokens/", {"name": "migration"}).content.decode()
    key = re.search(r"(etl_[\w-]{20,})", page).group(1)
    token = ApiToken.objects.get(user=editor)
    assert token.key_hash == hash_key(key) and key not in token.key_hash and token.last_used_at is None
    assert key not in client.get("/account/tokens/").content.decode()  # never again
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/tasks/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    client.post(f"/account/tokens/{token.pk}/revoke/")
    assert api.get("/api/v1/tasks/").status_code == 401
    # Someone else's token cannot be revoked by guessing its id.
    other, _ = ApiToken.issue(world["users"]["admin"], "theirs")
    assert client.post(f"/account/tokens/{other.pk}/revoke/").status_code == 404


def test_a_task_with_every_setting_and_a_secret_parameter(world):  # noqa: F811
    api, _ = token_client(world["users"]["coder"])
    body = {"project": world["project"].pk, "name": "Full", "source_kind": "query",
            "source_connection": world["shop"].pk, "query": "SELECT 1", "file_name": "full.csv",
            "destinations": [{"connection": world["spare"].pk, "folder": "out"}],
            "conditions": [{"kind": "min_rows", "value": "1"}],
            "upstream_links": [{"upstream": world["task"].pk, "on": "success"}],
            "parameters": [{"key": "token", "value": "s3cret", "sensitive": True}]}
    response = api.post("/api/v1/tasks/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["destinations"][0]["folder"] == "out" and data["upstream_links"][0]["upstream"] == world["task"].pk
    assert "s3cret" not in response.content.decode() and data["parameters"][0]["value"] is None
    task = Task.objects.get(name="Full")
    assert task.parameters.get().value == "s3cret" and task.conditions.count() == 1


def test_bad_input_is_a_400_naming_the_field(world):  # noqa: F811
    api, _ = token_client(world["users"]["coder"])
    response = api.post("/api/v1/tasks/", {"project": world["project"].pk, "name": "Bad", "source_kind": "query",
                                           "source_connection": world["shop"].pk, "query": ""}, format="json")
    assert response.status_code == 400
    assert response.json() == {"query": ["Type the query, or load it from a connection."]}
    response = api.patch(f"/api/v1/tasks/{world['task'].pk}/", {"priority": 0}, format="json")
    assert response.status_code == 400 and "priority" in response.json()
    huge = api.patch(f"/api/v1/tasks/{world['task'].pk}/", {"source_connection": 10**19}, format="json")
    assert huge.status_code == 400 and "source_connection" in huge.json()
    assert api.get("/api/v1/runs/1/log/?after=abc").status_code in (400, 404)
    assert api.get(f"/api/v1/runs/{world['queued'].pk}/log/?after=abc").json() == {
        "after": ["after must be a whole number."]}


def bulk_items(world, count):
    return [{"project": world["project"].pk, "name": f"table_{n}", "source_kind": "query",
             "source_connection": world["shop"].pk, "query": f"SELECT * FROM table_{n}",
             "destinations": [{"connection": world["spare"].pk, "folder": "in"}]} for n in range(count)]


def test_bulk_upsert_is_all_or_none_and_idempotent(world):  # noqa: F811
    api, _ = token_client(world["users"]["editor"])
    items = bulk_items(world, 20)
    first = api.post("/api/v1/tasks/bulk/", items, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["created"] == 20
    stamps = dict(Task.objects.values_list("name", "updated_at"))
    second = api.post("/api/v1/tasks/bulk/", items, format="json").json()
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 20)
    assert dict(Task.objects.values_list("name", "updated_at")) == stamps
    items[3]["query"] = "SELECT 3"
    items[7]["priority"] = 500
    items[9]["source_connection"] = None
    response = api.post("/api/v1/tasks/bulk/", items, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(7, "priority"), (9, "source_connection")}
    assert Task.objects.get(name="table_3").query == "SELECT * FROM table_3"  # none of it was saved


def test_a_run_as_of_a_date_its_log_and_cancel(world):  # noqa: F811
    api, _ = token_client(world["users"]["editor"])
    run = api.post(f"/api/v1/tasks/{world['task'].pk}/run/", {"as_of": "2024-03-01T00:00:00Z"}, format="json")
    assert run.status_code == 201 and run.json()["scheduled_for"].startswith("2024-03-01")
    run_id = run.json()["id"]
    lines = api.get(f"/api/v1/runs/{run_id}/log/").json()
    assert lines and "Queued" in lines[0]["message"]
    assert api.get(f"/api/v1/runs/{run_id}/log/?after={lines[-1]['id']}").json() == []
    assert "cancelled" in api.post(f"/api/v1/runs/{run_id}/cancel/").json()["detail"]
    assert api.get(f"/api/v1/runs/{run_id}/").json()["status"] == "cancelled"


def test_connection_secrets_are_write_only(world):  # noqa: F811
    api, _ = token_client(world["users"]["admin"])
    spare = world["spare"]
    response = api.patch(f"/api/v1/connections/{spare.pk}/", {"description": "x"}, format="json")
    assert response.status_code == 200 and "pw" not in response.json().values()
    assert response.json()["stored_secrets"] == ["password"] and "secrets" not in response.json()
    moved = api.patch(f"/api/v1/connections/{spare.pk}/", {"host": "127.0.0.2"}, format="json").json()
    assert moved["stored_secrets"] == []  # pointing elsewhere dropped the password, as on the page


def test_docs_load_only_same_origin_scripts(client, world):  # noqa: F811
    client.force_login(world["users"]["viewer"])
    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url).content.decode()
        assert "<script" in page
        for tag in re.findall(r"<script[^>]*>", page):
            src = re.search(r'src="([^"]*)"', tag)
            assert src and src.group(1).startswith("/"), (url, tag)  # no inline script, no CDN
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/tasks/bulk/" in schema.content


def test_superuser_can_list_everything(world):  # noqa: F811
    assert User.objects.filter(is_superuser=True).exists()
    api, _ = token_client(world["users"]["superuser"])
    assert api.get("/api/v1/organizations/").json()["count"] == 2
