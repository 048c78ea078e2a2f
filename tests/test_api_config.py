"""Tasks as code: export -> import into an empty portal -> export gives the same text; --plan changes nothing."""
import io

import pytest
from django.core.management import CommandError, call_command

from projects.models import Parameter, Project
from tasks.models import Condition, Dependency, Destination, Task
from tests.test_access_pages import world, world_rows  # noqa: F401

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_export_import_export_gives_the_same_text_and_no_secret(world, tmp_path):  # noqa: F811
    task = world["task"]
    Condition.objects.create(task=task, kind="min_rows", value="1")
    Dependency.objects.create(upstream=world["script_task"], downstream=task)
    Parameter.objects.create(task=task, key="api_key", value="s3cret-value", sensitive=True)
    first = run("export_config")
    assert "s3cret-value" not in first and "pw" not in first.split()
    assert "source_connection: Shop" in first and "upstream: Feeds/Reshape" in first
    Task.objects.all().delete()
    Project.objects.all().delete()
    path = tmp_path / "config.yaml"
    path.write_text(first)
    run("import_config", str(path))
    assert run("export_config") == first
    assert Destination.objects.get().connection == world["spare"]
    assert run("import_config", str(path), "--plan").strip() == "No changes."


def test_plan_shows_what_would_change_and_changes_nothing(world, tmp_path):  # noqa: F811
    text = run("export_config").replace("query: SELECT 1", "query: SELECT 42").replace(
        "- name: Reshape", "- name: Reshaped")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    lines = run("import_config", str(path), "--plan").splitlines()
    assert "~ task A/Feeds/Orders: query" in lines
    assert "+ task A/Feeds/Reshaped" in lines and "- task A/Feeds/Reshape" in lines
    assert Task.objects.get(name="Orders").query == "SELECT 1" and Task.objects.filter(name="Reshape").exists()
    run("import_config", str(path))
    assert Task.objects.get(name="Orders").query == "SELECT 42" and not Task.objects.filter(name="Reshape").exists()


def test_import_obeys_the_acting_users_rights(world, tmp_path):  # noqa: F811
    text = run("export_config").replace("script: print(1)", "script: print(2)")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match="may write code"):
        run("import_config", str(path), "--user", "editor")
    assert Task.objects.get(name="Reshape").script == "print(1)"


def test_the_same_over_the_api(world):  # noqa: F811
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(world["users"]["coder"])
    text = api.get("/api/v1/config/export/").json()["yaml"]
    changed = text.replace("query: SELECT 1", "query: SELECT 7")
    preview = api.post("/api/v1/config/import/", {"yaml": changed, "plan": True}, format="json").json()
    assert preview["changes"] == ["~ task A/Feeds/Orders: query"]
    assert api.post("/api/v1/config/import/", {"yaml": "projects: [1"}, format="json").status_code == 400
    viewer = APIClient()
    viewer.force_authenticate(world["users"]["viewer"])
    assert viewer.post("/api/v1/config/import/", {"yaml": changed}, format="json").status_code == 403
    assert api.post("/api/v1/config/import/", {"yaml": changed}, format="json").status_code == 200
    assert Task.objects.get(name="Orders").query == "SELECT 7"
