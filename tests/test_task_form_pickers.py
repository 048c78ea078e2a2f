"""The task form's long pickers (etl_portal/widgets.py): past 50 choices only the chosen ones are rendered, with
a search box; the search answers what the user may choose; the server still checks every choice."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from etl_portal.widgets import LIST_UP_TO
from connections.models import Connection
from projects.models import Project
from tasks.models import Dependency, Task
from tests import factories
from tests.test_task_form import form_data, shop  # noqa: F401  (the SQLite source fixture)

pytestmark = pytest.mark.django_db


def options(page, name):
    """The (value, label) options the page renders in the select called `name`."""
    select = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', page, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def many_tasks(project, count, prefix="Task"):
    return Task.objects.bulk_create([Task(project=project, name=f"{prefix} {index:03d}") for index in range(count)])


def edit_data(task, source, **fields):
    data = form_data(task.project, source, name=task.name, **fields)
    return data


def test_runs_after_lists_few_tasks_but_only_the_chosen_one_of_many(client, owner, project, shop):  # noqa: F811
    task = factories.task(project, "Report", source_connection=shop, query="SELECT 1")
    many_tasks(project, 3)
    client.force_login(owner)
    page = client.get(f"/tasks/{task.pk}/edit/").content.decode()
    labels = [label for _value, label in options(page, "dependencies-0-upstream")]
    assert labels == ["---------", "Task 000 · Vendor feeds", "Task 001 · Vendor feeds", "Task 002 · Vendor feeds"]
    assert 'class="search-picker"' not in page  # a short list stays a list

    upstream = many_tasks(project, LIST_UP_TO + 10, prefix="Load")[-1]
    Dependency.objects.create(upstream=upstream, downstream=task)
    page = client.get(f"/tasks/{task.pk}/edit/").content.decode()
    assert options(page, "dependencies-0-upstream") == [("", "---------"), (str(upstream.pk), "Load 059 · Vendor feeds")]
    assert options(page, "dependencies-1-upstream") == [("", "---------")]
    assert f'data-url="/tasks/pick/task/?exclude={task.pk}"' in page
    assert 'id="id_dependencies-1-upstream-search"' in page


def test_the_task_search_answers_only_tasks_the_user_sees_and_never_the_task_itself(client, owner, project):
    mine = many_tasks(project, 25, prefix="Orders")
    elsewhere = factories.organization("Other Org")
    their_project = factories.project(elsewhere, factories.user("them"), "Their feeds")
    many_tasks(their_project, 2, prefix="Orders")
    client.force_login(owner)
    page = client.get(f"/tasks/pick/task/?q=orders&exclude={mine[0].pk}").content.decode()
    found = re.findall(r'data-pick-value="(\d+)" data-pick-label="([^"]*)"', page)
    assert len(found) == 20 and "More match: type more of the name." in page
    assert str(mine[0].pk) not in [value for value, _label in found]
    assert all(label.endswith("· Vendor feeds") for _value, label in found)
    page = client.get("/tasks/pick/task/?q=vendor+FEEDS").content.decode()  # a project's name finds its tasks
    assert page.count("data-pick-value") == 20
    page = client.get("/tasks/pick/task/?q=orders 024").content.decode()
    assert re.findall(r'data-pick-label="([^"]*)"', page) == ["Orders 024 · Vendor feeds"]
    assert "Nothing matches “Their”." in client.get("/tasks/pick/task/?q=Their").content.decode()
    assert client.get("/tasks/pick/task/?exclude=x").status_code == 400


def test_the_server_accepts_a_task_found_by_search_and_refuses_one_the_user_cannot_see(client, owner, project,
                                                                                       shop):  # noqa: F811
    task = factories.task(project, "Report", source_connection=shop, query="SELECT 1")
    far = many_tasks(project, LIST_UP_TO + 10, prefix="Load")[-1]  # not rendered in the form: found by search
    their_project = factories.project(factories.organization("Other Org"), factories.user("them"), "Theirs")
    theirs = factories.task(their_project, "Secret load")
    client.force_login(owner)
    rows = {"dependencies-TOTAL_FORMS": 1, "dependencies-0-on": "success"}
    response = client.post(f"/tasks/{task.pk}/edit/", edit_data(task, shop, **rows, **{
        "dependencies-0-upstream": theirs.pk}))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Dependency.objects.exists()
    response = client.post(f"/tasks/{task.pk}/edit/", edit_data(task, shop, **rows, **{
        "dependencies-0-upstream": far.pk}))
    assert response.status_code == 302
    assert list(Dependency.objects.values_list("upstream__name", "downstream__name")) == [("Load 059", "Report")]


def test_the_form_makes_as_many_queries_at_60_tasks_as_at_600(client, owner, project, shop):  # noqa: F811
    task = factories.task(project, "Report", source_connection=shop, query="SELECT 1")
    client.force_login(owner)
    counts = []
    for more in (60, 540):
        many_tasks(project, more, prefix=f"Batch {more}")
        for index in range(more // 20):
            Project.objects.create(organization=project.organization, name=f"Project {more}-{index}", owner=owner)
            factories.member(project.organization, f"person{more}-{index}", "viewer")
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/tasks/{task.pk}/edit/").content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert options(page, "dependencies-0-upstream") == [("", "---------")]  # not 600 tasks


def test_project_and_people_pickers_search_what_the_user_may_choose(client, owner, project, organization):
    for index in range(LIST_UP_TO + 1):
        Project.objects.create(organization=organization, name=f"Feed {index:02d}", owner=owner)
        factories.member(organization, f"analyst{index:02d}", "viewer")
    outsider_org = factories.organization("Other Org")
    factories.project(outsider_org, factories.member(outsider_org, "analyst-elsewhere", "admin"), "Feed elsewhere")
    client.force_login(owner)
    page = client.get(f"/tasks/new/?project={project.pk}").content.decode()
    assert options(page, "project") == [("", "---------"), (str(project.pk), "Vendor feeds")]
    assert options(page, "publish_to_users") == []
    assert 'id="id_project-search"' in page and 'id="id_publish_to_users-search"' in page
    projects = client.get("/tasks/pick/project/?q=feed").content.decode()
    assert "Feed 00" in projects and "Feed elsewhere" not in projects
    people = client.get("/tasks/pick/person/?q=analyst").content.decode()
    assert "analyst00" in people and "analyst-elsewhere" not in people


def test_the_source_connection_options_say_what_each_can_do_for_the_kind_chosen(client, owner, project, shop,  # noqa: F811
                                                                               tmp_path):
    factories.local_folder(project.organization, tmp_path, name="Outbox")
    client.force_login(owner)
    page = client.get(f"/tasks/new/?project={project.pk}").content.decode()
    kinds = dict(re.findall(r'<option value="(\w+)"[^>]*data-needs="(\w+)"', page))
    assert kinds == {"query": "database", "files": "files", "ssh": "shell"}  # a script takes any connection
    listed = dict(re.findall(r'<option value="\d+"[^>]*data-capabilities="([\w ]*)"[^>]*>([^<]*)</option>', page))
    assert listed == {"database": "Shop DB (SQLite)", "files text": "Outbox (Local folder)"}
    refused = client.post("/tasks/new/", form_data(project, Connection.objects.get(name="Outbox")))
    assert refused.context["form"].errors["source_connection"] == [
        "Outbox is a Local folder connection; this needs database."]  # the server refuses what the list hides
