"""The project page's own actions: run all, enable or disable all tasks, duplicate (a disabled copy with its tasks).
Who may use them is in tests/test_access_pages.py's table; here, what each does."""
import pytest

from projects.models import Parameter, Project, Trigger
from runs.models import Run
from tasks.models import Dependency, Destination, Task
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path):
    a = factories.organization("A")
    viewer = factories.member(a, "viewer")
    editor = factories.member(a, "editor", "editor")
    project = factories.project(a, editor, "Feeds", mode="series")
    Parameter.objects.create(project=project, key="region", value="EU")
    Trigger.objects.create(project=project, kind="cron", hour="2", minute="0")
    drop = factories.local_folder(a, tmp_path / "drop")
    first = factories.task(project, "Orders", destinations=[(drop, "in")], run_rank=1)
    second = factories.task(project, "Refunds", run_rank=2)
    after = factories.task(project, "Summary", run_rank=3)
    off = factories.task(project, "Old extract", run_rank=4, enabled=False)
    Dependency.objects.create(upstream=second, downstream=after)
    return {"a": a, "viewer": viewer, "editor": editor, "project": project, "first": first, "second": second,
            "after": after, "off": off, "drop": drop}


def test_run_all_starts_the_project_as_its_trigger_would(client, world):
    client.force_login(world["editor"])
    response = client.post(f"/projects/{world['project'].pk}/run/", follow=True)
    runs = list(Run.objects.order_by("id"))
    # Series: the enabled tasks no dependency starts, by run rank, each after the one before it.
    assert [(run.task.name, run.status, run.trigger, run.requested_by) for run in runs] == [
        ("Orders", "queued", "manual", world["editor"]), ("Refunds", "queued", "manual", world["editor"])]
    assert runs[1].upstream_run == runs[0]
    assert "Started Feeds: 2 runs queued." in response.content.decode()


def test_run_all_of_a_disabled_project_starts_nothing(client, world):
    Project.objects.filter(pk=world["project"].pk).update(enabled=False)
    client.force_login(world["editor"])
    response = client.post(f"/projects/{world['project'].pk}/run/", follow=True)
    assert not Run.objects.exists() and "is disabled; enable it first" in response.content.decode()


def test_disable_and_enable_all_tasks_one_history_entry_each(client, world):
    client.force_login(world["editor"])
    response = client.post(f"/projects/{world['project'].pk}/set-enabled/", {"enabled": "0"}, follow=True)
    assert not world["project"].tasks.filter(enabled=True).exists()
    assert "Disabled 3 tasks of Feeds." in response.content.decode()  # the one already disabled is unchanged
    response = client.post(f"/projects/{world['project'].pk}/set-enabled/", {"enabled": "1"}, follow=True)
    assert world["project"].tasks.filter(enabled=True).count() == 4
    assert "Enabled 4 tasks of Feeds." in response.content.decode()
    changes = Task.history.filter(id=world["first"].pk, history_type="~")
    assert [(change.enabled, change.history_user) for change in changes.order_by("history_id")] == [
        (False, world["editor"]), (True, world["editor"])]


def test_duplicate_makes_a_disabled_copy_with_its_tasks(client, world):
    client.force_login(world["editor"])
    response = client.post(f"/projects/{world['project'].pk}/duplicate/")
    copy = Project.objects.get(name="Feeds (copy)")
    assert response.status_code == 302 and response.url == f"/projects/{copy.pk}/"
    assert (copy.enabled, copy.owner, copy.organization, copy.mode) == (False, world["editor"], world["a"], "series")
    tasks = {task.name: task for task in copy.tasks.all()}
    assert sorted(tasks) == ["Old extract", "Orders", "Refunds", "Summary"]
    assert not any(task.enabled for task in tasks.values())
    assert [(d.connection, d.folder) for d in Destination.objects.filter(task=tasks["Orders"])] == [
        (world["drop"], "in")]
    assert [(link.upstream, link.downstream) for link in Dependency.objects.filter(upstream__project=copy)] == [
        (tasks["Refunds"], tasks["Summary"])]
    assert [(p.key, p.value) for p in copy.parameters.all()] == [("region", "EU")]
    assert [(t.kind, t.hour, t.minute) for t in copy.triggers.all()] == [("cron", "2", "0")]
    # The original is untouched, and a second copy gets its own name.
    assert world["project"].tasks.count() == 4 and world["project"].enabled
    client.post(f"/projects/{world['project'].pk}/duplicate/")
    assert Project.objects.filter(name="Feeds (copy 2)").exists()
    assert not Run.objects.exists()


def test_a_viewer_sees_no_project_actions_and_is_refused(client, world):
    client.force_login(world["viewer"])
    page = client.get(f"/projects/{world['project'].pk}/").content.decode()
    assert "project-run-button" not in page and "project-duplicate" not in page
    for action, data in (("run", {}), ("set-enabled", {"enabled": "0"}), ("duplicate", {})):
        assert client.post(f"/projects/{world['project'].pk}/{action}/", data).status_code == 403
    assert not Run.objects.exists() and Project.objects.count() == 1
    assert world["project"].tasks.filter(enabled=True).count() == 3


def test_an_editor_sees_the_actions(client, world):
    client.force_login(world["editor"])
    page = client.get(f"/projects/{world['project'].pk}/").content.decode()
    assert all(name in page for name in ("project-run-button", "project-enable-all", "project-disable-all",
                                         "project-duplicate"))
