"""The pages' authorization table (test_access_pages.py), run against the REST API with the same users, world
and expectations: whoever may do something on a page may do it through the API, and nobody else."""
import pytest
from rest_framework.test import APIClient

from tests.test_access_pages import (ADMINS, CODERS, EDITORS, MEMBERS, USERS, snapshot, world,  # noqa: F401
                                     world_rows)

pytestmark = pytest.mark.django_db


def task_json(w, **changes):
    return {"project": w["project"].pk, "name": "New extract", "source_kind": "query",
            "source_connection": w["shop"].pk, "query": "SELECT 2", **changes}


def script_json(w, **changes):
    return task_json(w, source_kind="script", source_connection=None, query="", script="print(2)", **changes)


ROWS = [
    ("project new", "post", lambda w: "/api/v1/projects/",
     lambda w: {"organization": w["a"].pk, "name": "Nightly", "owner": w["users"]["coder"].pk}, EDITORS),
    ("project edit", "patch", lambda w: f"/api/v1/projects/{w['project'].pk}/",
     lambda w: {"name": "Feeds renamed"}, EDITORS | {"group_editor"}),
    ("task new", "post", lambda w: "/api/v1/tasks/", task_json, EDITORS | {"group_editor"}),
    ("task new with a script", "post", lambda w: "/api/v1/tasks/", script_json, CODERS),
    ("task edit", "patch", lambda w: f"/api/v1/tasks/{w['task'].pk}/", lambda w: {"name": "Orders v2"},
     EDITORS | {"group_editor"}),
    ("script edit", "patch", lambda w: f"/api/v1/tasks/{w['script_task'].pk}/",
     lambda w: {"script": "import os; print(os.listdir('/'))"}, CODERS),
    ("task delete", "delete", lambda w: f"/api/v1/tasks/{w['task'].pk}/", lambda w: {}, EDITORS | {"group_editor"}),
    ("task run", "post", lambda w: f"/api/v1/tasks/{w['task'].pk}/run/", lambda w: {}, EDITORS | {"group_editor"}),
    ("task bulk", "post", lambda w: "/api/v1/tasks/bulk/", lambda w: [task_json(w, name="Bulk one")],
     EDITORS | {"group_editor"}),
    ("run cancel", "post", lambda w: f"/api/v1/runs/{w['queued'].pk}/cancel/", lambda w: {}, EDITORS | {"group_editor"}),
    ("file resend", "post", lambda w: f"/api/v1/files/{w['file'].pk}/resend/", lambda w: {}, EDITORS | {"group_editor"}),
    ("connection new", "post", lambda w: "/api/v1/connections/",
     lambda w: {"organization": w["a"].pk, "name": "New SFTP", "kind": "sftp", "host": "127.0.0.1", "port": 22,
                "username": "u"}, ADMINS),
    ("sqlite connection new", "post", lambda w: "/api/v1/connections/",
     lambda w: {"organization": w["a"].pk, "name": "New SQLite", "kind": "sqlite", "path": w["shop"].path},
     ADMINS),
    ("connection edit", "patch", lambda w: f"/api/v1/connections/{w['spare'].pk}/",
     lambda w: {"description": "changed"}, ADMINS),
    ("connection delete", "delete", lambda w: f"/api/v1/connections/{w['shop'].pk}/", lambda w: {}, set()),  # in use
]
CHANGING = {"project new", "project edit", "task new", "task new with a script", "task edit", "script edit",
            "task delete", "task run", "task bulk", "run cancel", "connection new", "sqlite connection new",
            "connection edit"}
CODE_ROWS = {"task new with a script", "script edit"}
CREATING = {"project new", "task new", "task new with a script", "connection new", "sqlite connection new",
            "task bulk"}


@pytest.mark.parametrize("user_name", USERS)
@pytest.mark.parametrize("name, method, url, data, allowed", ROWS, ids=[row[0] for row in ROWS])
def test_who_may_make_each_changing_request(world, user_name, name, method, url, data, allowed):  # noqa: F811
    client = APIClient()
    client.force_authenticate(world["users"][user_name])
    before = snapshot()
    response = getattr(client, method)(url(world), data(world), format="json")
    after = snapshot()
    body = response.content.decode()
    if user_name in allowed:
        expected = {200, 201, 204}
        if name == "file resend":
            expected = {400}  # allowed, but the file's stored copy is gone: said so, as on the page
            assert "no longer kept" in body
        assert response.status_code in expected, (user_name, name, response.status_code, body[:2000])
        if name in CHANGING:
            assert after != before, f"{user_name} was allowed {name} but nothing changed"
    else:
        may_see = user_name in MEMBERS or user_name == "superuser"
        expected = {403, 404} if may_see else {404}
        if name in CREATING:  # no object to hide: refused outright, or the organization/project refused as input
            expected = {400, 403} if user_name in ("other_admin", "stranger") else {403}
        if name in CODE_ROWS and user_name in EDITORS | {"group_editor"}:
            expected = {400}  # an editor without the code permission: refused as bad input, saying why
            assert "may write code" in body
        if name == "connection delete" and user_name in ADMINS:
            expected = {409}
            assert "In use by these tasks" in body
        assert response.status_code in expected, (user_name, name, response.status_code, body[:500])
        assert response["Content-Type"].startswith("application/json")
        assert after == before, f"{user_name} changed something with {name}"


READ_URLS = [
    lambda w: f"/api/v1/projects/{w['project'].pk}/",
    lambda w: f"/api/v1/projects/{w['project'].pk}/next-fire-times/",
    lambda w: f"/api/v1/tasks/{w['task'].pk}/",
    lambda w: f"/api/v1/runs/{w['queued'].pk}/",
    lambda w: f"/api/v1/runs/{w['queued'].pk}/log/",
    lambda w: f"/api/v1/connections/{w['shop'].pk}/",
    lambda w: f"/api/v1/organizations/{w['a'].pk}/",
    lambda w: f"/api/v1/files/{w['file'].pk}/",
]


@pytest.mark.parametrize("user_name", USERS)
def test_members_see_and_others_do_not_even_learn_it_exists(world, user_name):  # noqa: F811
    client = APIClient()
    client.force_authenticate(world["users"][user_name])
    member = user_name in MEMBERS or user_name == "superuser"
    for url in READ_URLS:
        status = client.get(url(world)).status_code
        assert status == (200 if member else 404), (url(world), status)
    tasks = client.get("/api/v1/tasks/").json()["results"]
    connections = client.get("/api/v1/connections/").json()["results"]
    assert ("Orders" in [t["name"] for t in tasks] and "Shop" in [c["name"] for c in connections]) == member


def test_without_credentials_the_api_answers_401_json_not_a_login_page(world):  # noqa: F811
    response = APIClient().get("/api/v1/tasks/")
    assert response.status_code == 401 and response.json()["detail"]
    response = APIClient().get("/api/v1/tasks/", HTTP_AUTHORIZATION="Bearer etl_nonsense")
    assert response.status_code == 401 and "Unknown or revoked" in response.json()["detail"]
