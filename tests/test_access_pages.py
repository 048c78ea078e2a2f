"""The authorization table: every changing URL of the pages, tried by every kind of user across two organizations.

Each row names a request and who may make it. A user who may gets a success (and the change happens where
the row says so); anyone else gets 403 or 404 (404 when they may not even see the object) and nothing in the
database changes. Admin actions and commands have their own table in test_access_admin.py.
"""

import socket

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import override_settings

from alerts.models import Webhook
from connections.models import Connection
from projects.models import Membership, Organization, Parameter, Project, Trigger
from runs.models import Backfill, Run, RunFile
from tasks.models import Destination, Task
from tests import factories
from tests.shared_rows import built_once, fresh, log_in, sessions_of

pytestmark = pytest.mark.django_db

# Who may do what. "member" means any role in organization A.
EDITORS = {"editor", "coder", "admin", "superuser"}
CODERS = {"coder", "admin", "superuser"}
ADMINS = {"admin", "superuser"}
MEMBERS = {"viewer", "staff_viewer", "group_editor"} | EDITORS
USERS = ["viewer", "staff_viewer", "group_editor", "editor", "coder", "admin", "other_admin", "stranger",
         "superuser"]


def build_world(local):
    """Organization A with one user of each role, organization B with its own admin, and A's objects."""
    org_a = Organization.objects.create(name="A")
    org_b = Organization.objects.create(name="B")
    users = {name: User.objects.create_user(name, f"{name}@example.com") for name in USERS}  # no hashing: fast
    users["staff_viewer"].is_staff = True
    users["staff_viewer"].save()
    users["superuser"].is_superuser = users["superuser"].is_staff = True
    users["superuser"].save()
    for name, role, code in (("viewer", "viewer", False), ("staff_viewer", "viewer", False),
                             ("group_editor", "viewer", False), ("editor", "editor", False),
                             ("coder", "editor", True), ("admin", "admin", True)):
        Membership.objects.create(organization=org_a, user=users[name], role=role, can_write_code=code)
    Membership.objects.create(organization=org_b, user=users["other_admin"], role="admin", can_write_code=True)
    group = Group.objects.create(name="Feed editors")
    users["group_editor"].groups.add(group)

    shop = factories.sqlite_source(org_a, local / "shop.sqlite3", "CREATE TABLE t (n INTEGER)", name="Shop")
    spare = Connection.objects.create(organization=org_a, name="Spare", kind="sftp", host="127.0.0.1", port=22,
                                      username="u", secrets={"password": "pw"}, host_key="ssh-ed25519 AAAA")
    project = Project.objects.create(organization=org_a, name="Feeds", owner=users["coder"])
    project.editor_groups.add(group)
    Trigger.objects.create(project=project, kind="cron", hour="2", minute="0")
    Parameter.objects.create(project=project, key="region", value="EU")
    task = Task.objects.create(project=project, name="Orders", source_connection=shop, query="SELECT 1")
    Destination.objects.create(task=task, connection=spare, folder="in")
    script_task = Task.objects.create(project=project, name="Reshape", source_kind="script", script="print(1)")
    queued = Run.objects.create(task=task, status=Run.Status.QUEUED)
    done = Run.objects.create(task=task, status=Run.Status.FAILED)
    run_file = factories.run_file(done, "orders.csv", size=3, md5="0" * 32)
    batch = Backfill.objects.create(project=project, task=task, first_date="2024-05-01", last_date="2024-05-01")
    Run.objects.create(task=task, status=Run.Status.QUEUED, trigger=Run.Trigger.BACKFILL, backfill=batch)
    hook = Webhook.objects.create(project=project, name="Ops", url="https://hooks.example/ops", secret="sig")
    # A test message is really sent: to a local port nothing listens on, so it fails at once (and says so).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    probe = Webhook.objects.create(project=project, name="Probe", url=f"{closed}/probe")
    org_hook = Webhook.objects.create(organization=org_a, name="Org ops", url=f"{closed}/org", secret="sig")
    return {"users": users, "a": org_a, "b": org_b, "shop": shop, "spare": spare, "project": project,
            "task": task, "script_task": script_task, "queued": queued, "done": done, "file": run_file,
            "backfill": batch, "hook": hook, "probe": probe, "org_hook": org_hook}


@pytest.fixture(scope="module")
def world_rows(django_db_setup, django_db_blocker, tmp_path_factory):
    """The world's rows, built once per module (tests/shared_rows.py): every test sees them unchanged."""
    local = tmp_path_factory.mktemp("world") / "local"
    local.mkdir()

    def build():
        with override_settings(ETL_LOCAL_ROOTS=[str(local)]):
            world = build_world(local)
        return {**world, "sessions": sessions_of(world["users"])}

    with built_once(django_db_blocker, build) as world:
        yield {"local": local, "world": world}


@pytest.fixture
def world(world_rows, db, settings):
    """This test's copy of the world (import `world_rows` with it)."""
    settings.ETL_LOCAL_ROOTS = [str(world_rows["local"])]
    return fresh(world_rows["world"])


def management(**counts):
    data = {}
    for prefix, total in counts.items():
        data.update({f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": 0})
    return data


def project_data(w, owner, **changes):
    return {"organization": w["a"].pk, "name": "Nightly", "owner": owner.pk, "enabled": "on", "mode": "series",
            "max_parallel": 4, "time_zone": "UTC", "missed_runs": "run_once",
            **management(triggers=0, parameters=0), **changes}


def task_data(w, **changes):
    return {"project": w["project"].pk, "name": "New extract", "run_rank": 1, "enabled": "on",
            "source_kind": "query", "source_connection": w["shop"].pk, "text_location": "inline",
            "query": "SELECT 2", "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal",
            "line_terminator": "lf", "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail",
            "file_handling": "as_is", "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
            "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "",
            **management(destinations=0, parameters=0, conditions=0, notifications=0, dependencies=0), **changes}


def webhook_data(w, **changes):
    return {"name": "Chat", "style": "slack", "url": "https://hooks.example/chat", "on_failure": "on",
            "enabled": "on", **changes}


def connection_data(w, **changes):
    return {"organization": w["a"].pk, "name": "New SFTP", "kind": "sftp", "host": "127.0.0.1", "port": 22,
            "username": "u", **changes}


# (name, url, data, who may): data and url take the world; the request is a POST.
ROWS = [
    ("project new", lambda w: "/projects/new/", lambda w: project_data(w, w["users"]["coder"]), EDITORS),
    ("project edit", lambda w: f"/projects/{w['project'].pk}/edit/",
     lambda w: project_data(w, w["project"].owner, name="Feeds renamed"), EDITORS | {"group_editor"}),
    ("project reschedule", lambda w: f"/projects/{w['project'].pk}/reschedule/", dict,
     EDITORS | {"group_editor"}),
    ("task new", lambda w: "/tasks/new/", task_data, EDITORS | {"group_editor"}),
    ("task new with a script", lambda w: "/tasks/new/",
     lambda w: task_data(w, source_kind="script", source_connection="", query="", script="print(2)"), CODERS),
    ("task edit", lambda w: f"/tasks/{w['task'].pk}/edit/", lambda w: task_data(w, name="Orders v2"),
     EDITORS | {"group_editor"}),
    ("script edit", lambda w: f"/tasks/{w['script_task'].pk}/edit/",
     lambda w: task_data(w, name="Reshape", source_kind="script", source_connection="", query="",
                         script="import os; print(os.listdir('/'))"), CODERS),
    ("task delete", lambda w: f"/tasks/{w['task'].pk}/delete/", dict, EDITORS | {"group_editor"}),
    ("task duplicate", lambda w: f"/tasks/{w['task'].pk}/duplicate/", dict, EDITORS | {"group_editor"}),
    ("task toggle", lambda w: f"/tasks/{w['task'].pk}/toggle/", dict, EDITORS | {"group_editor"}),
    ("task run", lambda w: f"/tasks/{w['task'].pk}/run/", dict, EDITORS | {"group_editor"}),
    ("task bulk disable", lambda w: "/tasks/bulk/", lambda w: {"action": "disable", "task": w["task"].pk},
     EDITORS | {"group_editor"}),
    ("task reschedule", lambda w: f"/tasks/{w['task'].pk}/reschedule/", dict, EDITORS | {"group_editor"}),
    ("task cancel retry", lambda w: f"/tasks/{w['task'].pk}/cancel-retry/", dict, EDITORS | {"group_editor"}),
    ("run cancel", lambda w: f"/runs/{w['queued'].pk}/cancel/", dict, EDITORS | {"group_editor"}),
    ("runs rerun", lambda w: "/runs/rerun/", lambda w: {"run": w["done"].pk}, EDITORS | {"group_editor"}),
    ("project run", lambda w: f"/projects/{w['project'].pk}/run/", dict, EDITORS | {"group_editor"}),
    ("project disable all", lambda w: f"/projects/{w['project'].pk}/set-enabled/", lambda w: {"enabled": "0"},
     EDITORS | {"group_editor"}),
    ("project duplicate", lambda w: f"/projects/{w['project'].pk}/duplicate/", dict, EDITORS | {"group_editor"}),
    ("task backfill", lambda w: f"/tasks/{w['task'].pk}/backfill/",
     lambda w: {"first_date": "2024-05-01", "last_date": "2024-05-02", "max_dates": 1}, EDITORS | {"group_editor"}),
    ("project backfill", lambda w: f"/projects/{w['project'].pk}/backfill/",
     lambda w: {"first_date": "2024-05-01", "max_dates": 1}, EDITORS | {"group_editor"}),
    ("backfill cancel", lambda w: f"/runs/backfills/{w['backfill'].pk}/cancel/", dict, EDITORS | {"group_editor"}),
    ("file resend", lambda w: f"/runs/files/{w['file'].pk}/resend/", dict, EDITORS | {"group_editor"}),
    ("task dry run", lambda w: f"/tasks/{w['task'].pk}/dry-run/", lambda w: {"date": "2024-03-15"},
     EDITORS | {"group_editor"}),
    ("run accept drift", lambda w: f"/runs/{w['done'].pk}/accept-drift/", dict, EDITORS | {"group_editor"}),
    ("task try (Test query)", lambda w: "/tasks/try/", lambda w: {**task_data(w), "try": "query"},
     EDITORS | {"group_editor"}),
    ("task webhook new", lambda w: f"/alerts/tasks/{w['task'].pk}/webhooks/new/", webhook_data,
     EDITORS | {"group_editor"}),
    ("project webhook new", lambda w: f"/alerts/projects/{w['project'].pk}/webhooks/new/", webhook_data,
     EDITORS | {"group_editor"}),
    ("webhook edit", lambda w: f"/alerts/webhooks/{w['hook'].pk}/edit/", lambda w: webhook_data(w, name="Ops 2"),
     EDITORS | {"group_editor"}),
    ("webhook delete", lambda w: f"/alerts/webhooks/{w['hook'].pk}/delete/", dict, EDITORS | {"group_editor"}),
    ("webhook test", lambda w: f"/alerts/webhooks/{w['probe'].pk}/test/", dict, EDITORS | {"group_editor"}),
    # An organization's webhooks reach every task of it: its admins manage them, as its connections.
    ("organization webhook new", lambda w: f"/alerts/organizations/{w['a'].pk}/webhooks/new/", webhook_data,
     ADMINS),
    ("organization webhook edit", lambda w: f"/alerts/webhooks/{w['org_hook'].pk}/edit/",
     lambda w: webhook_data(w, name="Org ops 2"), ADMINS),
    ("organization webhook delete", lambda w: f"/alerts/webhooks/{w['org_hook'].pk}/delete/", dict, ADMINS),
    ("organization webhook test", lambda w: f"/alerts/webhooks/{w['org_hook'].pk}/test/", dict, ADMINS),
    ("connection new", lambda w: "/connections/new/", connection_data, ADMINS),
    ("sqlite connection new", lambda w: "/connections/new/",
     lambda w: connection_data(w, kind="sqlite", host="", port="", username="", path=w["shop"].path), ADMINS),
    ("connection edit", lambda w: f"/connections/{w['spare'].pk}/edit/",
     lambda w: connection_data(w, name="Spare", host="127.0.0.1", description="changed"), ADMINS),
    ("connection test", lambda w: f"/connections/{w['shop'].pk}/test/", dict, EDITORS),
    ("connection forget host key", lambda w: f"/connections/{w['spare'].pk}/forget-host-key/", dict, ADMINS),
    ("connection windows", lambda w: f"/connections/{w['spare'].pk}/windows/",
     lambda w: {**management(windows=1), "windows-0-kind": "weekly", "windows-0-days": ["0"],
                "windows-0-start_time": "01:00", "windows-0-end_time": "02:00", "windows-0-time_zone": "UTC"},
     ADMINS),
    ("connection delete", lambda w: f"/connections/{w['shop'].pk}/delete/", dict, set()),  # in use: nobody
    ("member add", lambda w: f"/organizations/{w['a'].pk}/members/add/",
     lambda w: {"user": "other_admin", "role": "viewer"}, ADMINS),
    ("member change", lambda w: f"/organizations/{w['a'].pk}/members/{w['users']['viewer'].pk}/",
     lambda w: {"role": "editor", "can_write_code": "on"}, ADMINS),
    ("member remove", lambda w: f"/organizations/{w['a'].pk}/members/{w['users']['viewer'].pk}/remove/", dict,
     ADMINS),
    ("organization settings", lambda w: f"/organizations/{w['a'].pk}/settings/",
     lambda w: {"retries": "2", "confirm": "1", "parameters-TOTAL_FORMS": 0, "parameters-INITIAL_FORMS": 0}, ADMINS),
    ("project settings", lambda w: f"/projects/{w['project'].pk}/settings/",
     lambda w: {"retries": "2", "confirm": "1"}, EDITORS | {"group_editor"}),
    ("task use inherited value", lambda w: f"/tasks/{w['task'].pk}/use-inherited/",
     lambda w: {"setting": "retries"}, EDITORS | {"group_editor"}),
]
# Requests that change something when allowed (the others only queue work or may fail softly).
CHANGING = {"project new", "project edit", "task new", "task new with a script", "task edit", "script edit",
            "task delete", "task duplicate", "task toggle", "task run", "task bulk disable", "run cancel",
            "runs rerun", "project run", "project disable all", "project duplicate",
            "task backfill", "project backfill", "backfill cancel",
            "connection new", "sqlite connection new", "connection edit", "connection test",
            "connection forget host key", "member add", "member change", "member remove", "organization settings",
            "project settings", "task webhook new", "project webhook new", "webhook edit", "webhook delete",
            "organization webhook new", "organization webhook edit", "organization webhook delete"}

CODE_ROWS = {"task new with a script", "script edit"}
CREATING = {"project new", "task new", "task new with a script", "connection new", "sqlite connection new"}


def snapshot():
    """Every row a page could change, as plain values."""
    from django_q.models import Schedule

    models = [Organization, Membership, Project, Trigger, Parameter, Task, Destination, Connection, Run, RunFile,
              Schedule, Backfill, Webhook]
    # Every column of every row, read with plain SQL: the ORM would build the same 13 queries twice per case,
    # which was most of this table's time. Rows are sorted here, so no ORDER BY.
    with connection.cursor() as cursor:
        rows = {}
        for model in models:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(model._meta.db_table)}")
            rows[model.__name__] = sorted(map(repr, cursor.fetchall()))
    return rows


@pytest.mark.parametrize("user_name", USERS)
@pytest.mark.parametrize("name, url, data, allowed", ROWS, ids=[row[0] for row in ROWS])
def test_who_may_post_to_each_changing_url(client, world, user_name, name, url, data, allowed):
    world["user"] = world["users"][user_name]
    log_in(client, world["sessions"][user_name])
    before = snapshot()
    response = client.post(url(world), data(world))
    after = snapshot()
    if user_name in allowed:
        assert response.status_code in (200, 302), response.content.decode()[:2000]
        if name in CHANGING:
            assert after != before, f"{user_name} was allowed {name} but nothing changed"
    else:
        may_see = user_name in MEMBERS or user_name == "superuser"
        expected = {403, 404} if may_see else {404}
        if name in CREATING:  # no object to hide: refused outright, or the form refuses organization A in place
            expected = {200, 403} if user_name == "other_admin" else {403}
        if name in CODE_ROWS and user_name in EDITORS | {"group_editor"}:
            expected = {200}  # an editor without the code permission: refused in the form, saying why
            assert "may write code" in response.content.decode()
        if name == "connection delete" and may_see:
            expected |= {409}  # an admin is told which tasks use it
        assert response.status_code in expected, (user_name, name, response.status_code)
        assert after == before, f"{user_name} changed something with {name}"


# Pages that only show: every member of organization A sees them; others get a 404.
READ_URLS = [
    lambda w: f"/projects/{w['project'].pk}/",
    lambda w: f"/tasks/{w['task'].pk}/",
    lambda w: f"/tasks/{w['task'].pk}/preview/",
    lambda w: f"/runs/{w['queued'].pk}/",
    lambda w: f"/runs/{w['queued'].pk}/log/",
    lambda w: f"/runs/backfills/{w['backfill'].pk}/",
    lambda w: f"/runs/{w['done'].pk}/manifest.json",
    lambda w: f"/connections/{w['shop'].pk}/",
    lambda w: f"/organizations/{w['a'].pk}/",
    lambda w: f"/tasks/{w['task'].pk}/history/",
    lambda w: f"/projects/{w['project'].pk}/history/",
    lambda w: f"/organizations/{w['a'].pk}/settings/",
    lambda w: f"/organizations/{w['a'].pk}/history/",
    lambda w: f"/projects/{w['project'].pk}/settings/",
]


@pytest.mark.parametrize("user_name", USERS)
def test_members_see_and_others_do_not_even_learn_it_exists(client, world, user_name):
    log_in(client, world["sessions"][user_name])
    for url in READ_URLS:
        status = client.get(url(world)).status_code
        assert status == (200 if user_name in MEMBERS or user_name == "superuser" else 404), (url(world), status)
    listing = "".join(client.get(url).content.decode() for url in ("/tasks/", "/connections/", "/runs/"))
    assert ("Orders" in listing and "Shop" in listing) == (user_name in MEMBERS or user_name == "superuser")


def test_the_table_covers_every_changing_url():
    """A new POST endpoint must get a row here (the admin and API have their own tables)."""
    from django.urls import get_resolver

    names = {name for name in _walk(get_resolver().url_patterns) if not name.endswith(":")}
    read_only = {"dashboard:home", "runs:list", "tasks:list", "tasks:mine", "tasks:detail", "tasks:preview",
                 "runs:detail", "runs:log", "runs:live",
                 "runs:backfill", "runs:file-download", "runs:manifest", "runs:dry-run",
                 "files:hub", "projects:list", "projects:detail", "connections:list", "connections:detail",
                 "organizations:list", "organizations:detail", "tasks:history", "projects:history",
                 "organizations:history",
                 "projects:cron-preview",  # describes a typed cron expression: reads nothing stored, changes nothing
                 # the task form's picker searches: only what the user may choose (tests/test_task_form_pickers.py)
                 "tasks:pick-task", "tasks:pick-project", "tasks:pick-person",
                 "login", "logout", "password_change",
                 "password_change_done", "password_reset", "password_reset_done", "password_reset_confirm",
                 "password_reset_complete",
                 "health", "metrics"}
    covered = {"projects:new", "projects:edit", "projects:reschedule", "tasks:new", "tasks:edit", "tasks:delete",
               "tasks:duplicate", "tasks:toggle", "tasks:run", "tasks:bulk", "tasks:reschedule", "tasks:cancel-retry",
               "runs:cancel", "runs:file-resend", "tasks:dry-run", "runs:accept-drift", "connections:new",
               "connections:edit", "connections:test",
               "connections:forget-host-key", "connections:delete", "connections:windows", "organizations:member-add",
               "tasks:backfill", "projects:backfill", "runs:backfill-cancel",
               "organizations:member-change", "organizations:member-remove", "tasks:try",
               "organizations:settings", "projects:settings", "tasks:inherit",
               "alerts:task-webhook-new", "alerts:project-webhook-new", "alerts:webhook-edit", "alerts:webhook-delete",
               "alerts:organization-webhook-new", "alerts:webhook-test",
               "runs:rerun", "projects:run", "projects:set-enabled", "projects:duplicate"}
    own = {"account:settings"}  # changes only the signed-in user's own settings (tests/test_pages_live.py)
    # Reruns only what the user may run among everything they see, refusing a viewer (tests/test_dashboard.py).
    own |= {"dashboard:run-errored"}
    assert names - read_only - covered - own == set()


def _walk(patterns, namespace=""):
    """Every named URL as "namespace:name" (bare for the un-namespaced ones, such as Django's login)."""
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            # The admin and the API (with its token page) have their own tables: test_access_admin.py, test_api*.py.
            if {getattr(pattern, "app_name", None), getattr(pattern, "namespace", None)} & {"admin", "api", "tokens"}:
                continue
            inner = pattern.namespace or ""
            yield from _walk(pattern.url_patterns, f"{namespace}{inner}:" if inner else namespace)
        elif pattern.name:
            yield f"{namespace}{pattern.name}"


def test_ownership_moves_only_by_the_owner_or_an_admin(client, world):
    project, users = world["project"], world["users"]
    client.force_login(users["editor"])
    client.post(f"/projects/{project.pk}/edit/", project_data(world, users["editor"], name="Feeds"))
    project.refresh_from_db()
    assert project.owner == users["coder"]  # the editor's choice of owner was ignored
    client.force_login(users["admin"])
    client.post(f"/projects/{project.pk}/edit/", project_data(world, users["editor"], name="Feeds"))
    project.refresh_from_db()
    assert project.owner == users["editor"]


def test_pickers_list_only_the_organizations_people(client, world):
    client.force_login(world["users"]["coder"])
    form = client.get(f"/projects/{world['project'].pk}/edit/").content.decode()
    task_form = client.get("/tasks/new/").content.decode()
    assert ">editor<" in form and ">other_admin<" not in form and ">stranger<" not in form
    assert ">viewer<" not in form  # an owner must be an editor
    assert ">viewer<" in task_form and ">other_admin<" not in task_form


def test_a_task_cannot_use_another_organizations_connection(client, world):
    theirs = Connection.objects.create(organization=world["b"], name="Theirs", kind="sftp", host="127.0.0.1",
                                       port=22, username="u", secrets={"password": "theirs"})
    Membership.objects.create(organization=world["b"], user=world["users"]["coder"], role="editor")
    client.force_login(world["users"]["coder"])
    data = task_data(world, **management(destinations=1, parameters=0, conditions=0, notifications=0,
                                         dependencies=0))
    data.update({"destinations-0-connection": theirs.pk, "destinations-0-folder": "x",
                 "destinations-0-position": 0})
    page = client.post("/tasks/new/", data).content.decode()
    assert "belong to another organization than the project: Theirs" in page
    assert not Task.objects.filter(name="New extract").exists()


def test_the_last_admin_cannot_leave_or_be_demoted(client, world):
    admin, org = world["users"]["admin"], world["a"]
    client.force_login(admin)
    page = client.post(f"/organizations/{org.pk}/members/{admin.pk}/", {"role": "viewer"}, follow=True)
    assert "is the last admin of A" in page.content.decode()
    page = client.post(f"/organizations/{org.pk}/members/{admin.pk}/remove/", follow=True)
    assert "is the last admin of A" in page.content.decode()
    assert Membership.objects.get(organization=org, user=admin).role == "admin"


def test_the_members_page_shows_roles_and_the_code_permission(client, world):
    client.force_login(world["users"]["viewer"])
    page = client.get(f"/organizations/{world['a'].pk}/").content.decode()
    assert 'id="member-coder"' in page and "Editor</td><td>yes" in page and "Add a member" not in page
    client.force_login(world["users"]["admin"])
    page = client.get(f"/organizations/{world['a'].pk}/").content.decode()
    assert "Add a member" in page and 'name="can_write_code" checked' in page


@pytest.mark.parametrize("url", ["/tasks/?per_page=abc", "/tasks/?project=abc", "/tasks/?per_page=0",
                                 "/runs/{run}/log/?after=abc"])
def test_bad_query_values_answer_400_with_a_message(client, world, url):
    client.force_login(world["users"]["viewer"])
    response = client.get(url.format(run=world["queued"].pk))
    assert response.status_code == 400
    assert "must be" in response.content.decode()


def test_a_bulk_action_never_redirects_off_the_site(client, world):
    client.force_login(world["users"]["editor"])
    for target in ("javascript:alert(1)", "https://evil.example/", "//evil.example/"):
        response = client.post("/tasks/bulk/", {"action": "enable", "task": world["task"].pk, "next": target})
        assert response.status_code == 302 and response["Location"] == "/tasks/"
