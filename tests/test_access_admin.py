"""The admin and the changing management commands ask projects.access: one table per surface, every role.

Two organizations (Acme, from conftest, and Globex). In the admin, every user but `member` is staff with every
model permission of the portal's apps, so what refuses them is their organization role and nothing else.
"""
import copy
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.test import override_settings

from alerts.models import Alert, Webhook
from connections.models import Connection, ConnectionTest
from projects.models import Membership, Organization, Parameter, Project, SystemJob, Trigger
from runs.models import Backfill, DryRun, FileDownload, Run, RunFile, RunLog
from tasks.models import Condition, Dependency, Destination, Notification, Task
from tests import factories
from tests.conftest import PASSWORD
from tests.shared_rows import built_once, fresh, log_in, sessions_of

pytestmark = pytest.mark.django_db

APPS = ("projects", "connections", "tasks", "runs", "alerts")


FAST_PASSWORDS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = FAST_PASSWORDS


@override_settings(PASSWORD_HASHERS=FAST_PASSWORDS)
def build_world(folder):
    """The two organizations, one user per role, and one object of every model in each organization."""
    # The people of tests/conftest.py's fixtures of the same names.
    organization = factories.organization("Acme Analytics")
    owner = factories.member(organization, "olivia", "editor", can_write_code=True)
    member = factories.member(organization, "max", "viewer")
    org_admin = factories.member(organization, "ada", "admin", can_write_code=True)
    outsider = factories.user("eve")
    staff = factories.user("sam", is_staff=True, is_superuser=True)
    globex = Organization.objects.create(name="Globex")
    editor = User.objects.create_user("ed", "ed@example.com", PASSWORD)
    organization.members.add(editor, through_defaults={"role": "editor"})
    staff_viewer = User.objects.create_user("stan", "stan@example.com", PASSWORD, is_staff=True)
    organization.members.add(staff_viewer, through_defaults={"role": "viewer"})
    globex.members.add(outsider, through_defaults={"role": "admin", "can_write_code": True})
    admin_users = Group.objects.create(name="Admin users")
    admin_users.permissions.set(Permission.objects.filter(content_type__app_label__in=APPS + ("auth",)))
    for user in (editor, owner, org_admin, outsider, staff_viewer):
        user.is_staff = True
        user.save()
        user.groups.add(admin_users)
    objects = {}
    for org, prefix in ((organization, "A"), (globex, "G")):
        project = Project.objects.create(organization=org, name=f"{prefix} project",
                                         owner=owner if prefix == "A" else outsider)
        connection = Connection.objects.create(organization=org, name=f"{prefix} db", kind="sqlite",
                                               path=str(folder / f"{prefix}.sqlite3"))
        task = Task.objects.create(project=project, name=f"{prefix} task", source_connection=connection,
                                   query="select 1")
        upstream = Task.objects.create(project=project, name=f"{prefix} upstream", source_connection=connection,
                                       query="select 2")
        run = Run.objects.create(task=task, status=Run.Status.QUEUED)
        run_file = RunFile.objects.create(run=run, name=f"{prefix}.csv", size=1, md5="0" * 32)
        objects[prefix] = {
            "project": project, "connection": connection, "task": task, "run": run, "runfile": run_file,
            "destination": Destination.objects.create(task=task, connection=connection, folder="out"),
            "condition": Condition.objects.create(task=task, kind="min_rows", value="1"),
            "notification": Notification.objects.create(task=task, event="error", recipients="a@example.com"),
            "dependency": Dependency.objects.create(upstream=upstream, downstream=task),
            "parameter": Parameter.objects.create(task=task, key=f"{prefix}_key", value="v"),
            "trigger": Trigger.objects.create(project=project, kind="interval", every=1, unit="days"),
            "runlog": RunLog.objects.create(run=run, message="hello"),
            "backfill": backfill_of(task),
            "filedownload": FileDownload.objects.create(run_file=run_file, user=staff),
            "dryrun": DryRun.objects.create(task=task, scheduled_for=run.created_at),
            "connectiontest": ConnectionTest.objects.create(connection=connection, ok=True, message="fine"),
            "alert": Alert.objects.create(kind="late", task=task, run=run, due_at=run.created_at, message="late"),
            "webhook": Webhook.objects.create(project=project, name=f"{prefix} hook", url="https://hooks.example/x"),
            "membership": Membership.objects.get(organization=org, user=org_admin if prefix == "A" else outsider),
            "organization": org,
        }
    objects["systemjob"] = SystemJob.objects.create(name="Purge", function="purge_expired_files")
    users = {"member": member, "staff_viewer": staff_viewer, "editor": editor, "owner": owner,
             "org_admin": org_admin, "outsider": outsider, "superuser": staff}
    return {"users": users, "A": objects["A"], "G": objects["G"], "systemjob": objects["systemjob"]}


@pytest.fixture(scope="module")
def world_rows(django_db_setup, django_db_blocker, tmp_path_factory):
    """The world built once per module (tests/shared_rows.py): every test sees its rows unchanged."""
    folder = tmp_path_factory.mktemp("admin-world")
    def build():
        world = build_world(folder)
        return {**world, "sessions": sessions_of(world["users"])}

    with built_once(django_db_blocker, build) as world:
        yield {"folder": folder, "world": world, "unchanged_forms": {}}


@pytest.fixture
def w(world_rows, db, settings):
    """This test's copy of the world; its SQLite connections' folder is a server folder the portal may use."""
    settings.ETL_LOCAL_ROOTS = [*settings.ETL_LOCAL_ROOTS, world_rows["folder"].resolve()]
    return {**fresh(world_rows["world"]), "unchanged_forms": world_rows["unchanged_forms"]}


def backfill_of(task):
    """A batch of one date with its queued run."""
    batch = Backfill.objects.create(project=task.project, task=task, first_date="2024-05-01", last_date="2024-05-01")
    Run.objects.create(task=task, status=Run.Status.QUEUED, trigger=Run.Trigger.BACKFILL, backfill=batch)
    return batch


# Who may change (and delete) an Acme object of each model, by the need its admin declares.
EDITORS = {"editor", "owner", "org_admin", "superuser"}
ADMINS = {"org_admin", "superuser"}
SUPERUSERS = {"superuser"}
ALL = ["member", "staff_viewer", "editor", "owner", "org_admin", "outsider", "superuser"]
SEES_ACME = {"staff_viewer", "editor", "owner", "org_admin", "superuser"}

# model -> (app, who may change it, a field the change form changes, the new value)
MODELS = {
    "project": ("projects", EDITORS, "description", "changed"),
    "task": ("tasks", EDITORS, "description", "changed"),
    "destination": ("tasks", EDITORS, "folder", "changed"),
    "condition": ("tasks", EDITORS, "value", "7"),
    "notification": ("tasks", EDITORS, "recipients", "b@example.com"),
    "dependency": ("tasks", EDITORS, "on", "failure"),
    "parameter": ("projects", EDITORS, "key", "changed"),
    "trigger": ("projects", EDITORS, "jitter_seconds", 9),
    "run": ("runs", EDITORS, "priority", 9),
    "runlog": ("runs", EDITORS, "message", "changed"),
    "runfile": ("runs", EDITORS, None, None),  # every field is read-only (names shown masked)
    "connection": ("connections", ADMINS, "description", "changed"),
    "membership": ("projects", ADMINS, "role", "editor"),
    "organization": ("projects", ADMINS, "name", "Changed"),
    "filedownload": ("runs", EDITORS, None, None),
    "backfill": ("runs", EDITORS, None, None),  # read-only: started from the pages and commands
    "dryrun": ("runs", EDITORS, None, None),
    "connectiontest": ("connections", ADMINS, "message", "changed"),
    "alert": ("alerts", EDITORS, None, None),  # every field read-only: raised and cleared by the portal
    "webhook": ("alerts", EDITORS, None, None),  # read-only here: edited on the task and project pages
    "systemjob": ("projects", SUPERUSERS, "max_instances", 3),
}


def obj_of(w, model):
    return w["systemjob"] if model == "systemjob" else w["A"][model]


def form_data(response):
    """What the change page's form would post unchanged: its fields and every inline's management form."""
    def add(form, data):
        for bound in form:
            value = bound.value()
            if value is None:
                continue
            if hasattr(bound.field.widget, "decompress"):  # date and time in two inputs
                for index, part in enumerate(bound.field.widget.decompress(value)):
                    data[f"{bound.html_name}_{index}"] = str(part)
            elif isinstance(value, (list, tuple)):
                data[bound.html_name] = [str(item) for item in value]
            elif isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = str(value)

    data = {}
    add(response.context["adminform"].form, data)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form, data)
        for form in inline.formset.forms:
            add(form, data)
    return data


def login(client, w, who):
    log_in(client, w["sessions"][who])


def unchanged_form(client, w, url):
    """What the superuser's change page at `url` posts unchanged. The world's rows are the same in every test of
    the module, so each page is read once and its data copied to each test."""
    forms = w["unchanged_forms"]
    if url not in forms:
        login(client, w, "superuser")
        forms[url] = form_data(client.get(url))
    return copy.deepcopy(forms[url])


@pytest.mark.parametrize("model", MODELS)
def test_every_admin_list_shows_only_the_organizations_the_user_sees(client, w, model):
    app = MODELS[model][0]
    for who in ALL:
        login(client, w, who)
        response = client.get(f"/admin/{app}/{model}/")
        if who == "member":
            assert response.status_code == 302, "not staff: Django's login page"
            continue
        shown = set(response.context["cl"].result_list) if response.status_code == 200 else set()
        acme, globex = obj_of(w, model), w["G"].get(model)
        if who in SEES_ACME - {"superuser"}:  # not in the list, nor in a filter's choices
            assert not re.search(r">\s*(Globex|G project|G task|G db)\s*<", response.content.decode()), who
        assert (acme in shown) == (who in SEES_ACME and (model != "systemjob" or who == "superuser")), (who, model)
        if globex is not None:
            assert (globex in shown) == (who in {"outsider", "superuser"}), (who, model)


@pytest.mark.parametrize("model", [name for name, spec in MODELS.items() if spec[2]])
@pytest.mark.parametrize("who", ALL)
def test_admin_change_view_by_role(client, w, model, who):
    app, allowed, field, value = MODELS[model]
    obj = obj_of(w, model)
    url = f"/admin/{app}/{model}/{obj.pk}/change/"
    data = unchanged_form(client, w, url)
    data[field] = str(value)
    before = getattr(type(obj).objects.get(pk=obj.pk), field)
    login(client, w, who)
    response = client.post(url, data)
    after = getattr(type(obj).objects.get(pk=obj.pk), field)
    if who in allowed:
        assert response.status_code == 302, response.context and response.context["adminform"].form.errors
        assert str(after) == str(value)
    else:
        assert response.status_code in (302, 403) and after == before
        if response.status_code == 302:  # not staff, or not visible: login page or "does not exist"
            assert "/login/" in response.url or response.url == "/admin/"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("who", ALL)
def test_admin_delete_view_by_role(client, w, model, who):
    app, allowed, *_ = MODELS[model]
    if model == "organization":
        allowed = SUPERUSERS  # creating and deleting organizations is a superuser's
    obj = obj_of(w, model)
    if model in ("connection", "organization"):  # protected while used: delete an unused one of Acme
        obj = (Connection.objects.create(organization=w["A"]["organization"], name="Spare", kind="sqlite", path="x")
               if model == "connection" else obj)
    login(client, w, who)
    response = client.post(f"/admin/{app}/{model}/{obj.pk}/delete/", {"post": "yes"})
    exists = type(obj).objects.filter(pk=obj.pk).exists()
    if who in allowed and model != "organization":
        assert response.status_code == 302 and not exists
    else:
        assert exists  # refused (403, login, not found) or, for the superuser, protected by its projects


@pytest.mark.parametrize("who", ALL)
def test_admin_add_project_only_in_an_organization_where_the_user_edits(client, w, who):
    acme = w["A"]["organization"]
    login(client, w, who)
    response = client.post("/admin/projects/project/add/", {
        "organization": acme.pk, "name": "New", "owner": w["users"]["owner"].pk, "mode": "series",
        "time_zone": "UTC", "missed_runs": "run_once", "max_parallel": 4, "enabled": "on",
        "triggers-TOTAL_FORMS": 0, "triggers-INITIAL_FORMS": 0})
    created = Project.objects.filter(name="New").exists()
    assert created == (who in EDITORS), (who, response.status_code)
    if who == "outsider":  # may add in Globex, so the form opens, but Acme is not a choice
        assert response.status_code == 200 and "organization" in response.context["adminform"].form.errors
    if who == "staff_viewer":
        assert response.status_code == 403


@pytest.mark.parametrize("who", ALL)
def test_membership_admin_grants_roles_only_in_organizations_the_user_administers(client, w, who):
    login(client, w, who)
    newcomer = User.objects.create_user("nina", "nina@example.com", PASSWORD)
    for org in (w["A"]["organization"], w["G"]["organization"]):
        client.post("/admin/projects/membership/add/", {"organization": org.pk, "user": newcomer.pk,
                                                        "role": "admin", "can_write_code": "on"})
    granted = set(Membership.objects.filter(user=newcomer).values_list("organization__name", flat=True))
    expected = {"superuser": {"Acme Analytics", "Globex"}, "org_admin": {"Acme Analytics"}, "outsider": {"Globex"}}
    assert granted == expected.get(who, set())


@pytest.mark.parametrize("who", ["org_admin", "staff_viewer"])
def test_only_a_superuser_makes_superusers_or_grants_groups_in_the_user_admin(client, w, who):
    user = w["users"][who]
    url = f"/admin/auth/user/{user.pk}/change/"
    login(client, w, "superuser")
    data = form_data(client.get(url))
    data.update(is_superuser="on", user_permissions=[str(p.pk) for p in Permission.objects.all()[:3]])
    login(client, w, who)
    client.post(url, data)
    user.refresh_from_db()
    assert not user.is_superuser and not user.user_permissions.exists()


# (model, action, who may, what it changes on an object: read before and after)
ACTIONS = [
    ("task", "run_now", EDITORS, lambda o: Run.objects.filter(task=o, trigger="manual").count()),
    ("task", "duplicate", EDITORS, lambda o: Task.objects.filter(name__startswith=f"{o.name} (copy").count()),
    ("task", "disable", EDITORS, lambda o: Task.objects.get(pk=o.pk).enabled),
    ("task", "reschedule", EDITORS, None),
    ("project", "reschedule", EDITORS, None),
    ("project", "duplicate", EDITORS, lambda o: Project.objects.filter(name__startswith=f"{o.name} (copy").count()),
    ("connection", "test_connections", EDITORS, lambda o: Connection.objects.get(pk=o.pk).last_tested_at),
    ("backfill", "cancel_backfills", EDITORS, lambda o: Backfill.objects.get(pk=o.pk).cancelled_at),
    ("systemjob", "activate", SUPERUSERS, lambda o: SystemJob.objects.get(pk=o.pk).active),
    ("systemjob", "reschedule", SUPERUSERS, None),
    ("systemjob", "run_now", SUPERUSERS, None),
]


@pytest.mark.parametrize("model, action, allowed, state", ACTIONS, ids=[f"{m}-{a}" for m, a, *_ in ACTIONS])
@pytest.mark.parametrize("who", ALL)
def test_admin_actions_act_on_allowed_objects_and_name_the_refused(client, w, model, action, allowed, state, who):
    app = MODELS[model][0]
    acme, globex = obj_of(w, model), w["G"].get(model)
    selected = [o for o in (acme, globex) if o is not None]
    before = {o.pk: state(o) for o in selected} if state else {}
    login(client, w, who)
    response = client.post(f"/admin/{app}/{model}/", {"action": action, "_selected_action": [o.pk for o in selected]},
                           follow=True)
    text = response.content.decode()
    if who == "member":
        assert "/login/" in response.redirect_chain[-1][0]
    for obj in selected:
        may = who in allowed and (obj is not globex or who in ("outsider", "superuser"))
        if obj is globex and who == "outsider":
            may = model != "systemjob"  # an editor (here admin) of Globex
        sees = who == "superuser" or (model != "systemjob" and (
            (obj is acme and who in SEES_ACME) or (obj is globex and who == "outsider")))
        if state:
            assert (state(obj) != before[obj.pk]) == may, (who, obj)
        if sees and not may:
            assert f"Not allowed: {obj}" in text, (who, obj)
        if not sees:  # what they may not see is not even named
            assert str(obj) not in text.partition('<ul class="messagelist">')[2].partition("</ul>")[0]


def test_admin_task_form_needs_the_code_permission_to_change_code(client, w):
    task = w["A"]["task"]
    url = f"/admin/tasks/task/{task.pk}/change/"
    login(client, w, "superuser")
    data = form_data(client.get(url))
    for who, may in (("editor", False), ("owner", True)):
        login(client, w, who)
        response = client.post(url, {**data, "source_kind": "script", "script": f"print('{who}')"})
        assert (Task.objects.get(pk=task.pk).script == f"print('{who}')") == may
        if not may:
            assert "may write code" in response.content.decode()
    login(client, w, "editor")  # changing what is not code stays an editor's right
    response = client.post(url, {**data, "source_kind": "script", "script": "print('owner')", "priority": 3})
    assert response.status_code == 302 and Task.objects.get(pk=task.pk).priority == 3


@pytest.mark.parametrize("who, may", [("editor", False), ("staff_viewer", False), ("org_admin", True)])
def test_admin_connection_form_needs_code_permission_for_server_paths(client, w, who, may, tmp_path):
    org_admin = w["users"]["org_admin"]
    if who == "editor":  # an admin without the code permission
        Membership.objects.filter(user=w["users"]["editor"]).update(role="admin")
    Membership.objects.filter(user=org_admin).update(can_write_code=may and who == "org_admin")
    login(client, w, who)
    client.post("/admin/connections/connection/add/", {
        "organization": w["A"]["organization"].pk, "name": "Local", "kind": "sqlite",
        "path": str(tmp_path / "x.sqlite3")})
    assert Connection.objects.filter(name="Local").exists() == may


# --- commands ----------------------------------------------------------------------------------------------

def commands(w):
    task, run, project = w["A"]["task"], w["A"]["run"], w["A"]["project"]
    return {
        "run_task": (EDITORS, ["run_task", str(task.pk)], lambda: Run.objects.filter(task=task).count()),
        "run_project": (EDITORS, ["run_project", str(project.pk)], lambda: Run.objects.count()),
        "cancel_run": (EDITORS, ["cancel_run", str(run.pk)], lambda: Run.objects.get(pk=run.pk).status),
        "backfill": (EDITORS, ["backfill", "--task", str(task.pk), "--from", "2024-05-01"],
                     lambda: Run.objects.filter(task=task).count()),
        "backfill_cancel": (EDITORS, ["backfill", "--cancel", str(w["A"]["backfill"].pk)],
                            lambda: Backfill.objects.get(pk=w["A"]["backfill"].pk).cancelled_at),
        "reschedule_project": (EDITORS, ["reschedule_all", "--project", str(project.pk)], None),
        "reschedule_all": (SUPERUSERS, ["reschedule_all"], None),
        "rotate_secrets": (SUPERUSERS, ["rotate_secrets"], None),
    }


@pytest.mark.parametrize("command", ["run_task", "run_project", "cancel_run", "backfill", "backfill_cancel",
                                     "reschedule_project", "reschedule_all", "rotate_secrets"])
@pytest.mark.parametrize("who", ALL)
def test_commands_with_a_user_check_the_pages_rights(w, command, who):
    allowed, args, state = commands(w)[command]
    user = w["users"][who]
    before = state() if state else None
    if who in allowed:
        call_command(*args, "--user", user.username)
        if state:
            assert state() != before
        if command == "run_task":
            assert Run.objects.filter(task=w["A"]["task"]).latest("id").requested_by == user
    else:
        with pytest.raises(CommandError) as refused:
            call_command(*args, "--user", user.username)
        assert refused.value.returncode != 0 and user.username in str(refused.value)
        # The missing right is named; what the user may not see is "not found" for them, as on the pages.
        assert any(words in str(refused.value) for words in ("editor role", "needs a superuser", "may not see",
                                                               f"that {user.username} may see"))
        if state:
            assert state() == before


def test_commands_read_the_user_from_ETL_COMMAND_USER_and_run_as_the_operator_without_one(w, settings):
    task = w["A"]["task"]
    settings.ETL_COMMAND_USER = "max"
    with pytest.raises(CommandError, match="max may not run task"):
        call_command("run_task", str(task.pk))
    assert not Run.objects.filter(task=task, trigger="command").exists()
    with pytest.raises(CommandError, match="no active user 'nobody'"):
        call_command("run_task", str(task.pk), "--user", "nobody")
    settings.ETL_COMMAND_USER = ""
    call_command("run_task", str(task.pk))
    run = Run.objects.get(task=task, trigger="command")
    assert run.requested_by is None


@pytest.mark.parametrize("who, expected", [("editor", {"A db"}), ("outsider", {"G db"}),
                                           ("superuser", {"A db", "G db"})])
def test_admin_autocomplete_offers_only_the_users_organizations(client, w, who, expected):
    login(client, w, who)
    response = client.get("/admin/autocomplete/", {"app_label": "tasks", "model_name": "task",
                                                   "field_name": "source_connection", "term": "db"})
    assert {item["text"].split(" (")[0] for item in response.json()["results"]} == expected
