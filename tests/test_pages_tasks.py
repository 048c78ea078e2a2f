"""All Tasks, My Tasks, Task Details, New/Edit Task, bulk actions, duplicate, delete: as a user sees them."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connections.models import Connection
from projects.models import Parameter, Project
from runs.models import Run, RunFile
from tasks.models import Destination, Task
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def sqlite_conn(organization, tmp_path):
    return factories.sqlite_source(organization, tmp_path / "src.sqlite3", "CREATE TABLE t (n INTEGER)",
                                   name="Shop DB")


@pytest.fixture
def outbox(organization, tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    return Connection.objects.create(organization=organization, name="Outbox", kind="local", path=str(folder))


def make_tasks(project, source, count, prefix="Task"):
    return Task.objects.bulk_create([Task(project=project, name=f"{prefix} {i:03d}", source_connection=source,
                                          query="SELECT 1", run_rank=i) for i in range(count)])


def test_all_tasks_lists_filters_and_clouds(client, owner, member, project, sqlite_conn, organization):
    other = Project.objects.create(organization=organization, name="Finance", owner=member)
    make_tasks(project, sqlite_conn, 3, "Vendor")
    make_tasks(other, sqlite_conn, 1, "Ledger")
    client.force_login(member)
    page = client.get("/tasks/").content.decode()
    assert "Vendor 000" in page and "Ledger 000" in page
    assert 'id="owner-cloud"' in page and ">olivia</a>" in page and ">max</a>" in page
    assert 'title="3 tasks">Vendor feeds</a>' in page
    filtered = client.get(f"/tasks/?project={other.pk}").content.decode()
    assert "Ledger 000" in filtered and "Vendor 000" not in filtered
    by_owner = client.get("/tasks/?owner=olivia").content.decode()
    assert "Vendor 001" in by_owner and "Ledger 000" not in by_owner
    searched = client.get("/tasks/?q=ledg").content.decode()
    assert "Ledger 000" in searched and "Vendor 000" not in searched


def test_my_tasks_shows_only_projects_the_user_owns(client, owner, member, project, sqlite_conn, organization):
    other = Project.objects.create(organization=organization, name="Finance", owner=member)
    make_tasks(project, sqlite_conn, 2, "Vendor")
    make_tasks(other, sqlite_conn, 1, "Ledger")
    client.force_login(member)
    page = client.get("/tasks/mine/").content.decode()
    assert "Ledger 000" in page and "Vendor 000" not in page
    assert 'id="owner-cloud"' not in page and 'id="project-cloud"' in page


def test_outsider_sees_no_task_and_gets_404(client, outsider, project, sqlite_conn):
    task = make_tasks(project, sqlite_conn, 1)[0]
    client.force_login(outsider)
    assert "Task 000" not in client.get("/tasks/").content.decode()
    assert client.get(f"/tasks/{task.pk}/").status_code == 404
    assert client.post(f"/tasks/{task.pk}/run/").status_code == 404


def test_login_is_required_everywhere(client, project, sqlite_conn):
    task = make_tasks(project, sqlite_conn, 1)[0]
    for url in ["/tasks/", "/tasks/mine/", f"/tasks/{task.pk}/", "/tasks/new/", "/projects/", "/files/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_query_count_does_not_grow_with_page_size_or_data(client, staff, project, sqlite_conn, organization):
    client.force_login(staff)
    mine = Project.objects.create(organization=organization, name="Staff's own", owner=staff)
    make_tasks(mine, sqlite_conn, 5)
    task = Task.objects.first()
    Run.objects.create(task=task, status="succeeded")
    small = {url: count_queries(client, url) for url in ["/tasks/?per_page=5", "/tasks/mine/?per_page=5",
                                                         f"/tasks/{task.pk}/"]}
    for index in range(3):
        extra = Project.objects.create(organization=organization, name=f"More {index}", owner=staff)
        make_tasks(extra, sqlite_conn, 40)
    runs = Run.objects.bulk_create([Run(task=task, status="failed") for _ in range(30)])
    RunFile.objects.bulk_create([RunFile(run=run, name="f.csv", size=1, md5="0" * 32) for run in runs])
    Parameter.objects.create(task=task, key="k", value="v")
    Destination.objects.create(task=task, connection=sqlite_conn)
    large = {url.replace("per_page=5", "per_page=100"): count_queries(client, url.replace("per_page=5", "per_page=100"))
             for url in small}
    assert list(small.values()) == list(large.values())
    assert max(large.values()) <= 20


def test_task_details_show_settings_history_and_controls(client, owner, project, sqlite_conn, outbox):
    task = Task.objects.create(project=project, name="Orders", source_connection=sqlite_conn,
                               query="SELECT * FROM t", file_name="orders.csv", retries=2, retry_backoff=True)
    Destination.objects.create(task=task, connection=outbox, folder="in", skip_empty=True)
    Parameter.objects.create(task=task, key="api_key", value="s3cr3t-value", sensitive=True)
    Parameter.objects.create(task=task, key="region", value="EU")
    run = Run.objects.create(task=task, status="failed", error="PostgreSQL error: boom")
    client.force_login(owner)
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    for text in ["Orders", "Run now", "Edit", "Duplicate", "Disable", "Delete", "Outbox: in", "empty files not sent",
                 "<code>region</code> = EU", "2 × after 300 s, doubling up to 3600 s", f"#{run.pk}",
                 "PostgreSQL error: boom", "Parameters preview"]:
        assert text in page, text
    assert "s3cr3t-value" not in page
    preview = client.get(f"/tasks/{task.pk}/preview/").content.decode()  # loaded into the page by its script
    assert "SELECT * FROM t" in preview and "s3cr3t-value" not in preview


def test_member_sees_details_without_controls(client, member, project, sqlite_conn):
    task = make_tasks(project, sqlite_conn, 1)[0]
    client.force_login(member)
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Task 000" in page and "Run now" not in page
    assert client.post(f"/tasks/{task.pk}/run/").status_code == 403  # visible, so forbidden rather than not found


def test_new_task_form_saves_with_destinations_and_shows_errors_in_place(client, owner, project, sqlite_conn,
                                                                          outbox):
    client.force_login(owner)
    assert 'data-switch="source_kind"' in client.get("/tasks/new/").content.decode()
    base = {
        "project": project.pk, "name": "Daily orders", "run_rank": 1, "enabled": "on", "source_kind": "query",
        "text_location": "inline", "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal",
        "line_terminator": "lf", "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail",
        "file_handling": "as_is", "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
        "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "",
    }
    for prefix, rows in (("destinations", 1), ("parameters", 1), ("conditions", 0), ("notifications", 0),
                         ("dependencies", 0)):
        base.update({f"{prefix}-TOTAL_FORMS": rows, f"{prefix}-INITIAL_FORMS": 0})
    missing_query = client.post("/tasks/new/", {**base, "source_connection": sqlite_conn.pk}).content.decode()
    assert "Type the query, or load it from a connection." in missing_query
    wrong_kind = client.post("/tasks/new/", {**base, "source_connection": outbox.pk, "query": "SELECT 1"})
    assert "Outbox is a Local folder connection; this needs database." in wrong_kind.content.decode()
    response = client.post("/tasks/new/", {**base, "source_connection": sqlite_conn.pk, "query": "SELECT n FROM t",
                                           "destinations-0-connection": outbox.pk, "destinations-0-folder": "daily",
                                           "destinations-0-overwrite": "on", "destinations-0-position": 0,
                                           "parameters-0-key": "region", "parameters-0-value": "EU"})
    task = Task.objects.get(name="Daily orders")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert task.destinations.get().folder == "daily" and task.parameters.get().value == "EU"


def test_duplicate_makes_a_disabled_copy_with_parameters(client, owner, project, sqlite_conn, outbox):
    task = Task.objects.create(project=project, name="Orders", source_connection=sqlite_conn, query="SELECT 1")
    Destination.objects.create(task=task, connection=outbox, folder="x")
    Parameter.objects.create(task=task, key="token", value="hidden-value", sensitive=True)
    client.force_login(owner)
    response = client.post(f"/tasks/{task.pk}/duplicate/")
    copy = Task.objects.get(name="Orders (copy)")
    assert response["Location"] == f"/tasks/{copy.pk}/"
    assert not copy.enabled and copy.destinations.get().folder == "x"
    assert copy.parameters.get().value == "hidden-value"
    page = client.get(f"/tasks/{copy.pk}/").content.decode()
    assert "Disabled" in page and "hidden-value" not in page
    client.post(f"/tasks/{task.pk}/duplicate/")
    assert Task.objects.filter(name="Orders (copy 2)").exists()


def test_bulk_actions_and_toggle_and_delete(client, owner, project, sqlite_conn, django_capture_on_commit_callbacks):
    tasks = make_tasks(project, sqlite_conn, 3)
    client.force_login(owner)
    client.post("/tasks/bulk/", {"action": "disable", "task": [tasks[0].pk, tasks[1].pk]})
    assert list(Task.objects.order_by("name").values_list("enabled", flat=True)) == [False, False, True]
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/tasks/bulk/", {"action": "run", "task": [tasks[2].pk]})
    assert Run.objects.get().task_id == tasks[2].pk
    client.post(f"/tasks/{tasks[2].pk}/toggle/")
    assert not Task.objects.get(pk=tasks[2].pk).enabled
    assert "Delete Task 000?" in client.get(f"/tasks/{tasks[0].pk}/delete/").content.decode()
    client.post(f"/tasks/{tasks[0].pk}/delete/")
    assert not Task.objects.filter(pk=tasks[0].pk).exists()


def test_file_hub_lists_published_files_and_logs_downloads(client, owner, member, outsider, project, sqlite_conn,
                                                            tmp_path):
    task = make_tasks(project, sqlite_conn, 1)[0]
    task.publish_to_users.add(outsider)
    stored = tmp_path / "report.csv"
    stored.write_text("a\n1\n")
    run = Run.objects.create(task=task, status="succeeded")
    run_file = factories.run_file(run, "report.csv", size=4, md5="x" * 32, stored=stored)
    client.force_login(outsider)
    assert "report.csv" in client.get("/files/").content.decode()
    response = client.get(f"/runs/files/{run_file.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"a\n1\n"
    assert run_file.downloads.get().user == outsider
    client.force_login(member)
    assert "report.csv" not in client.get("/files/").content.decode()


def test_a_dependency_cycle_is_refused_on_save_naming_it(client, owner, project, sqlite_conn):
    from tasks.models import Dependency

    first = Task.objects.create(project=project, name="Load", source_connection=sqlite_conn, query="SELECT 1")
    second = Task.objects.create(project=project, name="Report", source_connection=sqlite_conn, query="SELECT 1")
    Dependency.objects.create(upstream=first, downstream=second, on="success")
    client.force_login(owner)
    form = client.get(f"/tasks/{first.pk}/edit/").context["form"]
    data = {name: value for name, value in form.initial.items()
            if value is not None and not isinstance(value, (list, tuple))}
    data.update({"project": project.pk, "source_connection": sqlite_conn.pk, "enabled": "on",
                 "include_headers": "on", "processing_location": ""})
    for prefix in ("destinations", "parameters", "conditions", "notifications"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update({"dependencies-TOTAL_FORMS": 1, "dependencies-INITIAL_FORMS": 0,
                 "dependencies-0-upstream": second.pk, "dependencies-0-on": "completion"})
    page = client.post(f"/tasks/{first.pk}/edit/", data).content.decode()
    assert "These dependencies would make a cycle: Load → Report → Load" in page
    assert not Dependency.objects.filter(upstream=second, downstream=first).exists()
