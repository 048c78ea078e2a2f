"""Settings shared across levels (tasks/inheritance.py): the nearest of task, project, organization wins, for
every setting of the registry; pages and API show and change each level; the affected count; templates."""
import pytest
from django.contrib.auth.models import User
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from api.models import ApiToken
from connections.models import Connection
from projects.models import Membership, Organization, Parameter, Project
from runs.leases import effective_timeout
from runs.orchestration import retry_delay
from tasks import inheritance
from tasks.models import Destination, Task
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def levels(settings, tmp_path):
    """Organization Acme (projects North and South, an admin, an editor, a viewer), mail and folder connections."""
    settings.ETL_LOCAL_ROOTS = [str(tmp_path)]
    org = Organization.objects.create(name="Acme")
    users = {name: User.objects.create_user(name, f"{name}@example.com") for name in ("admin", "editor", "viewer",
                                                                                        "outsider")}
    for name in ("admin", "editor", "viewer"):
        Membership.objects.create(organization=org, user=users[name], role=name, can_write_code=True)
    north = Project.objects.create(organization=org, name="North", owner=users["editor"])
    south = Project.objects.create(organization=org, name="South", owner=users["editor"])
    mails = [Connection.objects.create(organization=org, name=f"Relay {n}", kind="smtp", host="127.0.0.1", port=25)
             for n in (1, 2, 3)]
    folders = [factories.local_folder(org, tmp_path / f"drop{n}", name=f"Drop {n}") for n in (1, 2, 3)]
    shop = factories.sqlite_source(org, tmp_path / "shop.sqlite3", "CREATE TABLE t (n INTEGER)", name="Shop")
    return {"org": org, "users": users, "north": north, "south": south, "mails": mails, "folders": folders,
            "shop": shop}


def samples(levels):
    """Three valid values per setting (organization, project, task), none equal to the portal default."""
    mails, folders = levels["mails"], levels["folders"]
    text = {name: ("a@x.example", "b@x.example", "c@x.example") for name in
            ("error_recipients", "warning_recipients", "success_recipients", "test_email")}
    return {
        **text,
        **{f"{event}_smtp_connection": tuple(mails) for event in ("error", "warning", "success")},
        "test_mode": (True, False, True),
        "retries": (1, 2, 3),
        "retry_delay_seconds": (10, 20, 30),
        "retry_backoff": (True, False, True),
        "retry_max_delay_seconds": (100, 200, 300),
        "timeout_seconds": (600, 700, 800),
        "file_format": ("xlsx", "jsonl", "parquet"),
        "csv_delimiter": (";", "|", "\\t"),
        "csv_quoting": ("all", "nonnumeric", "none"),
        "encoding": ("cp1252", "utf-8-sig", "cp1252"),
        "line_terminator": ("crlf", "lf", "crlf"),
        "parquet_compression": ("zstd", "gzip", "none"),
        "retention_days": (7, 14, 30),
        "destination_connection": tuple(folders),
        "destination_folder": ("org/in", "north/in", "task/in"),
    }


def set_level(holder, **values):
    organization = holder if isinstance(holder, Organization) else holder.organization
    stored = inheritance.clean_level_settings({**(holder.settings or {}), **values}, organization)
    inheritance.save_level_settings(holder, stored)


def fresh(task):
    return Task.objects.select_related("project__organization").get(pk=task.pk)


def test_every_registered_setting_has_samples(levels):
    assert set(samples(levels)) == set(inheritance.NAMES)


@pytest.mark.parametrize("name", inheritance.NAMES)
def test_the_nearest_level_wins_and_not_set_inherits(levels, name):
    org_value, project_value, task_value = samples(levels)[name]
    setting = inheritance.BY_NAME[name]
    task = Task.objects.create(project=levels["north"], name="Orders")
    other = Task.objects.create(project=levels["south"], name="Stock")

    item = fresh(task).effective_settings()[name]
    assert (item.value, item.level) == (setting.default, "default")

    set_level(levels["org"], **{name: org_value})
    item = fresh(task).effective_settings()[name]
    assert (item.value, item.level, item.source) == (org_value, "organization", levels["org"])
    assert item.source_url == f"/organizations/{levels['org'].pk}/settings/"

    set_level(levels["north"], **{name: project_value})
    item = fresh(task).effective_settings()[name]
    assert (item.value, item.level, item.source) == (project_value, "project", levels["north"])
    assert fresh(other).effective(name) == org_value  # South still takes the organization's

    setattr(task, name, task_value)
    task.save()
    item = fresh(task).effective_settings()[name]
    assert (item.value, item.level, item.inherited, item.inherited_level) == (task_value, "task", project_value,
                                                                              "project")
    # A run reads the effective value straight from the field.
    assert getattr(fresh(task).with_effective_settings(), name) == task_value

    fresh(task).use_inherited(name)  # the task's override dropped: the project's again
    assert getattr(Task.objects.get(pk=task.pk), setting.model_field.attname) is None
    assert fresh(task).effective_settings()[name].level == "project"
    levels["north"].settings.pop(name)
    levels["north"].save()
    assert (fresh(task).effective_settings()[name].level, fresh(task).effective(name)) == ("organization", org_value)


def test_a_task_holding_effective_values_refuses_to_be_saved(levels):
    set_level(levels["org"], retries=4)
    task = fresh(Task.objects.create(project=levels["north"], name="Orders")).with_effective_settings()
    assert task.retries == 4
    with pytest.raises(RuntimeError):
        task.save()
    assert Task.objects.get(pk=task.pk).retries is None


def test_existing_values_stay_the_tasks_own(levels):
    """A task saved with values (as every task before levels existed) keeps them whatever a level sets."""
    task = Task.objects.create(project=levels["north"], name="Old", retries=0, encoding="utf-8", retention_days=90)
    set_level(levels["org"], retries=5, encoding="cp1252", retention_days=3)
    effective = fresh(task).effective_settings()
    assert [(effective[n].value, effective[n].level) for n in ("retries", "encoding", "retention_days")] == [
        (0, "task"), ("utf-8", "task"), (90, "task")]


def test_run_policies_use_the_effective_values(levels):
    set_level(levels["org"], retries=3, retry_delay_seconds=60, retry_backoff=True, retry_max_delay_seconds=200,
              timeout_seconds=900)
    set_level(levels["north"], retry_delay_seconds=50)
    task = fresh(Task.objects.create(project=levels["north"], name="Orders"))
    assert effective_timeout(task) == 900
    applied = fresh(task).with_effective_settings()
    assert [retry_delay(applied, attempt) for attempt in (1, 2, 3)] == [50, 100, 200]
    folder = levels["folders"][0]
    set_level(levels["north"], destination_connection=folder.pk, destination_folder="in/{task}")
    [default] = fresh(task).destinations_in_effect()
    assert (default.connection, default.folder, default.pk) == (folder, "in/{task}", None)
    Destination.objects.create(task=task, connection=levels["folders"][1], folder="own")
    assert [d.folder for d in fresh(task).destinations_in_effect()] == ["own"]  # its own list replaces the default


def test_the_affected_count_counts_the_tasks_that_inherit(levels, client):
    north, south = levels["north"], levels["south"]
    third = Project.objects.create(organization=levels["org"], name="West", owner=levels["users"]["editor"])
    Task.objects.create(project=north, name="n1")
    Task.objects.create(project=north, name="n2", retries=1)  # sets its own: not affected
    Task.objects.create(project=south, name="s1")
    Task.objects.create(project=south, name="s2")
    Task.objects.create(project=third, name="w1")
    set_level(third, retries=2)  # its project sets it: not affected by the organization
    elsewhere = Organization.objects.create(name="Other")
    Task.objects.create(project=Project.objects.create(organization=elsewhere, name="X",
                                                       owner=levels["users"]["admin"]), name="x1")
    assert inheritance.affected_tasks("organization", levels["org"], ["retries"]) == {"retries": (3, 2)}
    assert inheritance.affected_tasks("project", north, ["retries"]) == {"retries": (1, 1)}

    client.force_login(levels["users"]["admin"])
    page = client.post(f"/organizations/{levels['org'].pk}/settings/", {
        "retries": "4", **management("parameters")}).content.decode()
    assert "applies to 3 tasks in 2 projects" in page and 'id="confirm-save"' in page
    levels["org"].refresh_from_db()
    assert levels["org"].settings == {}  # nothing saved before the confirmation
    response = client.post(f"/organizations/{levels['org'].pk}/settings/", {
        "retries": "4", "confirm": "1", **management("parameters")})
    assert response.status_code == 302
    levels["org"].refresh_from_db()
    assert levels["org"].settings == {"retries": 4}
    assert fresh(Task.objects.get(name="s1")).effective_settings()["retries"].level == "organization"
    # The history records it at the organization's level.
    record = levels["org"].history.first()
    assert record.settings == {"retries": 4} and record.history_user == levels["users"]["admin"]
    history = client.get(f"/organizations/{levels['org'].pk}/history/").content.decode()
    assert "retries" in history and "admin" in history


def management(prefix, total=0):
    return {f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": 0}


def test_settings_pages_check_roles(levels, client):
    org, north, users = levels["org"], levels["north"], levels["users"]
    org_url, project_url = f"/organizations/{org.pk}/settings/", f"/projects/{north.pk}/settings/"
    post = {"retries": "2", "confirm": "1", **management("parameters")}
    client.force_login(users["outsider"])
    assert client.get(org_url).status_code == 404 and client.get(project_url).status_code == 404
    client.force_login(users["viewer"])
    assert client.get(org_url).status_code == 200 and client.get(project_url).status_code == 200
    assert client.post(org_url, post).status_code == 403 and client.post(project_url, post).status_code == 403
    client.force_login(users["editor"])
    assert client.post(org_url, post).status_code == 403  # the organization level needs its admin
    assert client.post(project_url, post).status_code == 302
    org.refresh_from_db()
    north.refresh_from_db()
    assert (org.settings, north.settings) == ({}, {"retries": 2})
    client.force_login(users["admin"])
    assert client.post(org_url, post).status_code == 302
    org.refresh_from_db()
    assert org.settings == {"retries": 2}


def test_a_bad_value_is_refused_in_place(levels, client):
    client.force_login(levels["users"]["admin"])
    other = Organization.objects.create(name="Other")
    foreign = Connection.objects.create(organization=other, name="Theirs", kind="smtp", host="h", port=25)
    response = client.post(f"/organizations/{levels['org'].pk}/settings/", {
        "retries": "1000", "error_smtp_connection": foreign.pk, "confirm": "1", **management("parameters")})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 100" in page and "Select a valid choice" in page
    levels["org"].refresh_from_db()
    assert levels["org"].settings == {}


def test_task_details_show_levels_and_use_inherited_drops_the_override(levels, client):
    set_level(levels["org"], retries=3, error_recipients="ops@acme.example")
    set_level(levels["north"], encoding="cp1252")
    task = Task.objects.create(project=levels["north"], name="Orders", retries=1, encoding="utf-8")
    client.force_login(levels["users"]["editor"])
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert 'id="setting-error_recipients" data-level="organization"' in page and "ops@acme.example" in page
    assert f'href="/organizations/{levels["org"].pk}/settings/"' in page
    assert 'id="setting-retries" data-level="task"' in page
    assert "use inherited value (3, organization)" in page
    assert "use inherited value (Windows-1252, project)" in page

    client.force_login(levels["users"]["viewer"])
    assert client.post(f"/tasks/{task.pk}/use-inherited/", {"setting": "retries"}).status_code == 403
    client.force_login(levels["users"]["editor"])
    assert client.post(f"/tasks/{task.pk}/use-inherited/", {"setting": "nonsense"}).status_code == 400
    assert client.post(f"/tasks/{task.pk}/use-inherited/", {"setting": "retries"}).status_code == 302
    task.refresh_from_db()
    assert task.retries is None
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert 'id="setting-retries" data-level="organization"' in page
    assert task.history.first().retries is None  # the drop is in the task's history


def test_the_task_form_shows_what_a_blank_inherits_and_keeps_it_inherited(levels, client):
    set_level(levels["north"], file_format="xlsx", retries=2)
    task = Task.objects.create(project=levels["north"], name="Orders", retries=5, source_connection=levels["shop"],
                               query="SELECT 1")
    client.force_login(levels["users"]["editor"])
    page = client.get(f"/tasks/{task.pk}/edit/").content.decode()
    assert "Inherit: Excel (.xlsx) (project)" in page
    assert f'href="/projects/{levels["north"].pk}/settings/" class="badge level-badge level-project"' in page
    assert 'data-inherit-field="retries"' in page
    form = TaskFormData(task)
    form["retries"] = ""  # "use inherited value" blanks the field
    response = client.post(f"/tasks/{task.pk}/edit/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert task.retries is None and task.file_format is None
    assert fresh(task).effective("retries") == 2


def TaskFormData(task):
    data = {"project": task.project_id, "name": task.name, "run_rank": 1, "enabled": "on", "source_kind": "query",
            "text_location": "inline", "query": "SELECT 1", "source_connection": task.source_connection_id, "on_no_files": "fail", "file_handling": "as_is",
            "priority": 50, "max_instances": 1, "dependency_mode": "all", "include_headers": "on"}
    for prefix in ("destinations", "parameters", "conditions", "notifications", "dependencies"):
        data.update(management(prefix))
    return data


def test_project_template_copies_settings_and_parameters_not_tasks(levels, client):
    north = levels["north"]
    set_level(north, retries=2, error_recipients="ops@acme.example")
    Parameter.objects.create(project=north, key="region", value="EU")
    Task.objects.create(project=north, name="Orders")
    client.force_login(levels["users"]["editor"])
    response = client.post("/projects/new/", {
        "organization": levels["org"].pk, "name": "East", "owner": levels["users"]["editor"].pk, "enabled": "on",
        "mode": "series", "max_parallel": 4, "time_zone": "UTC", "missed_runs": "run_once", "template": north.pk,
        **management("triggers"), **management("parameters")})
    assert response.status_code == 302
    east = Project.objects.get(name="East")
    assert east.settings == {"retries": 2, "error_recipients": "ops@acme.example"}
    assert list(east.parameters.values_list("key", "value")) == [("region", "EU")]
    assert not east.tasks.exists()


def test_a_task_template_keeps_inherited_values_inherited(levels, client):
    set_level(levels["north"], retries=2)
    set_level(levels["south"], retries=7)
    template = Task.objects.create(project=levels["north"], name="Orders", encoding="cp1252")
    client.force_login(levels["users"]["editor"])
    response = client.post(f"/tasks/{template.pk}/duplicate/", {"template_project": levels["south"].pk})
    assert response.status_code == 302
    copy = Task.objects.get(project=levels["south"])
    assert (copy.retries, copy.encoding) == (None, "cp1252")  # inherited stays inherited, its own value stays
    assert fresh(copy).effective_settings()["retries"].level == "project" and fresh(copy).effective("retries") == 7
    other = Project.objects.create(organization=Organization.objects.create(name="Other"), name="Z",
                                   owner=levels["users"]["outsider"])
    assert client.post(f"/tasks/{template.pk}/duplicate/", {"template_project": other.pk}).status_code == 404


def test_parameters_come_from_the_nearest_level_and_the_preview_names_it(levels, client):
    from runs.parameters import resolve

    Parameter.objects.create(organization=levels["org"], key="region", value="EU")
    Parameter.objects.create(organization=levels["org"], key="vendor", value="acme")
    Parameter.objects.create(project=levels["north"], key="region", value="US")
    task = Task.objects.create(project=levels["north"], name="Orders", file_name="{vendor}_{region}.csv")
    Parameter.objects.create(task=task, key="vendor", value="globex")
    values = resolve(fresh(task))
    assert (values["region"], values["vendor"]) == ("US", "globex")
    client.force_login(levels["users"]["viewer"])
    result = client.get(f"/tasks/{task.pk}/preview/", HTTP_ACCEPT="application/json").json()
    origins = {row["key"]: row["origin"] for row in result["parameters"]}
    assert (origins["region"], origins["vendor"]) == ("project", "task")
    Parameter.objects.filter(task=task).delete()
    result = client.get(f"/tasks/{task.pk}/preview/", HTTP_ACCEPT="application/json").json()
    assert {row["key"]: row["origin"] for row in result["parameters"]}["vendor"] == "organization"
    assert result["file_name"] == "acme_US.csv"


# --- API -------------------------------------------------------------------------------------------------

def api_as(user):
    _, key = ApiToken.issue(user, "levels")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


def test_api_reads_and_writes_each_level(levels):
    org, north, users = levels["org"], levels["north"], levels["users"]
    mail = levels["mails"][0]
    task = Task.objects.create(project=north, name="Orders", retries=1, source_connection=levels["shop"],
                               query="SELECT 1")
    admin, editor = api_as(users["admin"]), api_as(users["editor"])

    assert editor.patch(f"/api/v1/organizations/{org.pk}/", {"settings": {"retries": 3}},
                        format="json").status_code == 403
    answer = admin.patch(f"/api/v1/organizations/{org.pk}/", {
        "settings": {"retries": 3, "error_smtp_connection": mail.pk, "error_recipients": "ops@acme.example"},
        "parameters": [{"key": "vendor", "value": "acme"}]}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["settings"]["error_smtp_connection"] == mail.pk
    assert Parameter.objects.get(organization=org).key == "vendor"
    bad = admin.patch(f"/api/v1/organizations/{org.pk}/", {"settings": {"retries": -1, "colour": "red"}},
                      format="json")
    assert bad.status_code == 400 and set(bad.json()["settings"]) == {"retries", "colour"}

    assert editor.patch(f"/api/v1/projects/{north.pk}/", {"settings": {"encoding": "cp1252"}},
                        format="json").status_code == 200
    north.refresh_from_db()
    assert north.settings == {"encoding": "cp1252"}

    data = editor.get(f"/api/v1/tasks/{task.pk}/").json()
    assert data["retries"] == 1 and data["encoding"] is None
    effective = data["effective_settings"]
    assert effective["retries"] == {"value": 1, "level": "task", "source": task.pk, "source_name": "Orders",
                                    "task_value": 1}
    assert (effective["encoding"]["value"], effective["encoding"]["level"]) == ("cp1252", "project")
    assert (effective["error_smtp_connection"]["value"], effective["error_smtp_connection"]["level"],
            effective["error_smtp_connection"]["source"]) == (mail.pk, "organization", org.pk)
    assert (effective["retention_days"]["value"], effective["retention_days"]["level"]) == (90, "default")

    # null at the task level: inherit again
    assert editor.patch(f"/api/v1/tasks/{task.pk}/", {"retries": None}, format="json").status_code == 200
    data = editor.get(f"/api/v1/tasks/{task.pk}/").json()
    assert (data["retries"], data["effective_settings"]["retries"]["level"]) == (None, "organization")


def test_the_task_list_resolves_levels_without_a_query_per_task(levels):
    mail = levels["mails"][0]
    set_level(levels["org"], error_smtp_connection=mail.pk)
    api = api_as(levels["users"]["editor"])

    def queries(count):
        Task.objects.all().delete()
        for number in range(count):
            Task.objects.create(project=levels["north" if number % 2 else "south"], name=f"t{number}",
                                warning_smtp_connection=levels["mails"][1])
        with CaptureQueriesContext(db_connection) as captured:
            answer = api.get("/api/v1/tasks/")
        assert answer.status_code == 200 and len(answer.json()["results"]) == count
        return len(captured)

    queries(1)  # the first request also notes the token's use
    assert queries(2) == queries(8)


def test_export_import_keeps_the_levels(levels):
    from api.config import export_config, import_config

    org, north = levels["org"], levels["north"]
    folder = levels["folders"][0]
    set_level(org, retries=3, destination_connection=folder.pk)
    set_level(north, encoding="cp1252", error_smtp_connection=levels["mails"][1].pk)
    Parameter.objects.create(organization=org, key="vendor", value="acme")
    Task.objects.create(project=north, name="Orders", query="SELECT 1", retries=1, source_connection=levels["shop"])
    admin = levels["users"]["admin"]
    first = export_config(admin)
    assert "destination_connection: Drop 1" in first and "error_smtp_connection: Relay 2" in first
    Task.objects.all().delete()
    Project.objects.all().delete()
    Parameter.objects.filter(organization=org).delete()
    org.settings = {}
    org.save()
    import_config(admin, first)
    assert export_config(admin) == first
    org.refresh_from_db()
    assert org.settings == {"retries": 3, "destination_connection": folder.pk}
    task = Task.objects.select_related("project__organization").get(name="Orders")
    assert (task.retries, task.encoding) == (1, None)
    assert task.effective_settings()["encoding"].level == "project"
    assert task.effective_settings()["destination_connection"].level == "organization"
    # An editor may import projects but not change the organization's level.
    changed = first.replace("retries: 3", "retries: 4")
    from api.config import ConfigError
    with pytest.raises(ConfigError, match="Only an admin"):
        import_config(levels["users"]["editor"], changed)
