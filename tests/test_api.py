"""The REST API as a script sees it: tokens, task writes with every setting, bulk upsert, runs, docs."""
import re

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from api.models import ApiToken, hash_key
from tasks.models import Task
from tests.test_access_pages import world, world_rows  # noqa: F401

pytestmark = pytest.mark.django_db


def token_client(user):
    _, key = ApiToken.issue(user, "script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, key


def test_a_token_is_shown_once_stored_hashed_and_revocable(client, world):  # noqa: F811
    editor = world["users"]["editor"]
    client.force_login(editor)
    assert 'href="/account/tokens/"' in client.get("/tasks/").content.decode()  # in every page's user menu
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


def bulk_items(world, count):  # noqa: F811
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
    changed = api.post("/api/v1/tasks/bulk/", items, format="json").json()
    assert (changed["updated"], changed["unchanged"]) == (1, 19) and changed["tasks"][3]["result"] == "updated"
    assert Task.objects.get(name="table_3").query == "SELECT 3"  # a change is saved, not taken for unchanged
    items[3]["query"] = "SELECT 33"
    items[7]["priority"] = 500
    items[9]["source_connection"] = None
    response = api.post("/api/v1/tasks/bulk/", items, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(7, "priority"), (9, "source_connection")}
    assert Task.objects.get(name="table_3").query == "SELECT 3"  # none of it was saved


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


def test_a_bulk_costs_a_bounded_number_of_queries_whatever_its_size(world):  # noqa: F811
    """The bulk reads each picker, project and right once and inserts in batches: 60 tasks take only a few
    queries more than 2 (SQLite inserts about 15 task rows per statement), never some per task."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api, _ = token_client(world["users"]["editor"])
    counts = {}
    for size in (2, 60):
        items = [dict(item, name=f"{size}_{item['name']}") for item in bulk_items(world, size)]
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/api/v1/tasks/bulk/", items, format="json")
        assert response.status_code == 200 and response.json()["created"] == size, response.content[:500]
        counts[size] = len(queries)
    assert counts[60] <= counts[2] + 12, counts  # a query per task would add 58
    task = Task.objects.get(name="60_table_59")
    assert task.destinations.get().folder == "in"
    # Every created task and destination has its history record, by the token's user, as a single write has.
    record = task.history.get()
    assert record.history_type == "+" and record.history_user == world["users"]["editor"]
    assert task.destinations.get().history.get().history_user == world["users"]["editor"]


def test_a_bulk_keeps_every_setting_and_rule_of_a_single_write(world):  # noqa: F811
    api, _ = token_client(world["users"]["coder"])
    editor, viewer = world["users"]["editor"], world["users"]["viewer"]
    items = bulk_items(world, 2)
    items[0].update(file_name="{region}_{day}.csv", publish_to_users=[viewer.pk],
                    parameters=[{"key": "day", "value": "1"}, {"key": "secret", "value": "s3", "sensitive": True}],
                    conditions=[{"kind": "min_rows", "value": "1"}],
                    upstream_links=[{"upstream": world["task"].pk, "on": "success"}])
    response = api.post("/api/v1/tasks/bulk/", items, format="json")
    assert response.status_code == 200, response.content
    task = Task.objects.get(name="table_0")
    assert list(task.publish_to_users.all()) == [viewer]
    assert {p.key: p.value for p in task.parameters.all()} == {"day": "1", "secret": "s3"}
    assert task.conditions.get().value == "1" and task.upstream_links.get().upstream == world["task"]
    # The same rules as one write: a parameter name unknown, a key twice, code without the permission,
    # a connection that cannot be a destination.
    again = bulk_items(world, 4)
    again[0]["file_name"] = "{nowhere}.csv"
    again[1]["parameters"] = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]
    again[2].update(source_kind="script", source_connection=None, query="", script="print(1)")
    again[3]["destinations"] = [{"connection": world["shop"].pk, "folder": "in"}]
    editor_api, _ = token_client(editor)
    errors = editor_api.post("/api/v1/tasks/bulk/", again, format="json").json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {
        (0, "file_name"), (1, "parameters.1.key"), (2, "non_field_errors"), (3, "destinations.0.connection")}
    assert "may write code" in next(e["message"] for e in errors if e["index"] == 2)


def test_a_bulk_update_that_only_changes_a_sensitive_value_is_saved(world):  # noqa: F811
    """No answer shows a sensitive value, so the bulk cannot see that change in the task's representation."""
    from projects.models import Parameter

    api, _ = token_client(world["users"]["editor"])
    [item] = bulk_items(world, 1)
    item["parameters"] = [{"key": "token", "value": "first", "sensitive": True}]
    assert api.post("/api/v1/tasks/bulk/", [item], format="json").json()["created"] == 1
    item["parameters"][0]["value"] = "rotated"
    assert api.post("/api/v1/tasks/bulk/", [item], format="json").json()["updated"] == 1
    assert Parameter.objects.get(task__name=item["name"]).value == "rotated"
    assert api.post("/api/v1/tasks/bulk/", [item], format="json").json()["unchanged"] == 1


def test_patching_the_same_nested_lists_twice_changes_nothing_the_second_time(world):  # noqa: F811
    """Triggers keep their ids and schedules, destinations their ids, and no history record is added."""
    from django_q.models import Schedule

    from projects.models import Trigger
    from tasks.models import Destination

    api, _ = token_client(world["users"]["editor"])
    project, task = world["project"], world["task"]
    body = {"triggers": [{"kind": "cron", "hour": "3", "minute": "15"},
                         {"kind": "interval", "every": 2, "unit": "hours"}]}
    first = api.patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    assert first.status_code == 200, first.content
    state = (sorted(Trigger.objects.filter(project=project).values_list("id", "hour", "every")),
             sorted(Schedule.objects.values_list("id", "next_run")), Trigger.history.count())
    second = api.patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    assert second.status_code == 200 and second.json()["triggers"] == first.json()["triggers"]
    assert (sorted(Trigger.objects.filter(project=project).values_list("id", "hour", "every")),
            sorted(Schedule.objects.values_list("id", "next_run")), Trigger.history.count()) == state
    # In another order: still the same triggers, nothing saved.
    api.patch(f"/api/v1/projects/{project.pk}/", {"triggers": body["triggers"][::-1]}, format="json")
    assert Trigger.history.count() == state[2]
    destinations = {"destinations": [{"connection": world["spare"].pk, "folder": "a"},
                                     {"connection": world["spare"].pk, "folder": "b"}]}
    api.patch(f"/api/v1/tasks/{task.pk}/", destinations, format="json")
    ids, records = sorted(Destination.objects.values_list("id", flat=True)), Destination.history.count()
    api.patch(f"/api/v1/tasks/{task.pk}/", destinations, format="json")
    assert sorted(Destination.objects.values_list("id", flat=True)) == ids
    assert Destination.history.count() == records
    # A key given twice is a 400 naming it (it was a database clash, a 500).
    twice = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]
    response = api.patch(f"/api/v1/projects/{project.pk}/", {"parameters": twice}, format="json")
    assert response.status_code == 400
    assert response.json() == {"parameters": {"1": {"key": ["Given twice in this list."]}}}
    # A dependency changed to run on failure: the same upstream task, no clash.
    link = [{"upstream": world["script_task"].pk, "on": "success"}]
    api.patch(f"/api/v1/tasks/{task.pk}/", {"upstream_links": link}, format="json")
    link[0]["on"] = "failure"
    changed = api.patch(f"/api/v1/tasks/{task.pk}/", {"upstream_links": link}, format="json")
    assert changed.status_code == 200 and changed.json()["upstream_links"] == link
    # A shorter list removes the rest; the kept one stays as it was.
    api.patch(f"/api/v1/tasks/{task.pk}/", {"destinations": destinations["destinations"][1:]}, format="json")
    assert list(task.destinations.values_list("folder", flat=True)) == ["b"]
