"""The history of changes: edits through the real pages are recorded with who, when and what, shown on the
task and project pages and in the admin, and a planted secret appears in no history page or table."""
import re
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.actors import acting_as
from connections.models import Connection
from projects.models import Parameter, Project
from tasks.models import Destination, Task
from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "Planted-pass-4711!"
NEW_PASSWORD = "Planted-pass-0815?"
SENSITIVE = "planted-token-a1b2c3"
NEW_SENSITIVE = "planted-token-d4e5f6"


class _FormValues(HTMLParser):
    """What a browser would submit, unchanged, for the largest POST form on a page (not the logout form)."""

    def __init__(self):
        super().__init__()
        self.forms, self.values, self.select, self.textarea, self.multiple = [], None, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self.values = {}
            self.forms.append(self.values)
        if self.values is None:
            return
        if tag == "option" and self.select and "selected" in attrs:
            if self.multiple:
                self.values.setdefault(self.select, []).append(attrs.get("value", ""))
            else:
                self.values[self.select] = attrs.get("value", "")
        if "name" not in attrs:
            return
        if tag == "input" and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.values[attrs["name"]] = attrs.get("value", "on")
            else:
                self.values[attrs["name"]] = attrs.get("value") or ""
        elif tag == "select":
            self.select, self.multiple = attrs["name"], "multiple" in attrs
            if not self.multiple:
                self.values.setdefault(self.select, "")
        elif tag == "textarea":
            self.textarea = attrs["name"]
            self.values[self.textarea] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "form":
            self.values = None

    def handle_data(self, data):
        if self.textarea and self.values is not None:
            self.values[self.textarea] += data.lstrip("\n") if not self.values[self.textarea] else data


def form_values(client, url):
    parser = _FormValues()
    parser.feed(client.get(url).content.decode())
    values = max(parser.forms, key=len)
    values.pop("csrfmiddlewaretoken", None)
    return values


def raw(response):
    """The whole page as sent, attributes and scripts included: where a leak would hide."""
    assert response.status_code == 200
    return response.content.decode()


def text(response):
    """The visible text of a page, whitespace collapsed, to assert what a user reads."""
    assert response.status_code == 200
    content = re.sub(r"<script.*?</script>|<[^>]+>", " ", response.content.decode(), flags=re.S)
    return " ".join(content.split())


def history_rows():
    """Every row of every history table, as text: encrypted columns hold ciphertext, nothing else."""
    rows = []
    tables = [model._meta.db_table for model in apps.get_app_config("audit").get_models()]
    assert len(tables) >= 14  # ten tracked models and four many-to-many fields
    with db.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
            rows += [" ".join(str(value) for value in row) for row in cursor.fetchall()]
    return "\n".join(rows)


@pytest.fixture
def source(organization, tmp_path):
    return factories.sqlite_source(organization, tmp_path / "src.sqlite3", "CREATE TABLE t (n INTEGER)",
                                   name="Shop DB")


@pytest.fixture
def outbox(organization, tmp_path):
    (tmp_path / "outbox").mkdir()
    return Connection.objects.create(organization=organization, name="Outbox", kind="local",
                                     path=str(tmp_path / "outbox"))


def new_task(client, project, source, outbox):
    data = form_values(client, f"/tasks/new/?project={project.pk}")
    data.update({"name": "Daily orders", "source_connection": source.pk, "query": "SELECT n FROM t",
                 "file_name": "orders.csv", "destinations-0-connection": outbox.pk,
                 "destinations-0-folder": "daily", "parameters-0-key": "api_token",
                 "parameters-0-value": SENSITIVE, "parameters-0-sensitive": "on"})
    response = client.post("/tasks/new/", data)
    assert response.status_code == 302, re.findall(r"(?:invalid-feedback|errorlist|alert-danger)[^>]*>(.*?)</", response.content.decode(), flags=re.S)
    return Task.objects.get(name="Daily orders")


def test_task_edits_through_the_pages_are_recorded_with_who_when_and_what(client, owner, member, project, source,
                                                                          outbox):
    client.force_login(owner)
    task = new_task(client, project, source, outbox)
    edit = f"/tasks/{task.pk}/edit/"
    data = form_values(client, edit)
    data.update({"file_name": "orders_{today}.csv", "destinations-0-folder": "weekly",
                 "parameters-1-key": "region", "parameters-1-value": "region-eu-1"})
    assert client.post(edit, data).status_code == 302
    data = form_values(client, edit)
    data["destinations-0-DELETE"] = "on"
    assert client.post(edit, data).status_code == 302
    assert not Destination.objects.filter(task=task).exists()

    client.force_login(member)  # may look, not change: sees the same history
    page = text(client.get(f"/tasks/{task.pk}/history/"))
    assert "History of task Daily orders" in page
    for expected in ["olivia", "Created task Daily orders", "Created destination Outbox: daily",
                     "Changed task Daily orders", "file name: orders.csv → orders_{today}.csv",
                     "Changed destination Outbox: weekly", "folder: daily → weekly",
                     "Deleted destination Outbox: weekly", "Created parameter region", "value: (blank) → region-eu-1",
                     "Created parameter api_token", "value: set", " UTC"]:
        assert expected in page, expected
    assert SENSITIVE not in page
    # Newest first: the deletion is the latest change.
    assert page.index("Deleted destination") < page.index("Changed destination") < page.index("Created destination")

    detail = client.get(f"/tasks/{task.pk}/").content.decode()
    assert 'id="recent-changes"' in detail and f'href="/tasks/{task.pk}/history/"' in detail
    assert "olivia deleted destination <strong>Outbox: weekly</strong>" in detail


def test_history_pages_follow_the_detail_pages_visibility(client, owner, outsider, project, source):
    task = Task.objects.create(project=project, name="Orders", source_connection=source, query="SELECT 1")
    client.force_login(outsider)
    assert client.get(f"/tasks/{task.pk}/history/").status_code == 404
    assert client.get(f"/projects/{project.pk}/history/").status_code == 404
    client.force_login(owner)
    assert client.get(f"/tasks/{task.pk}/history/?page=oops").status_code == 200
    assert client.get(f"/projects/{project.pk}/history/?page=-3").status_code == 200


def test_a_connection_password_change_shows_changed_and_the_password_nowhere(client, org_admin, staff,
                                                                            organization, project, source):
    client.force_login(org_admin)  # only an organization admin manages connections
    form = {"organization": organization.pk, "name": "Vendor drop", "kind": "sftp", "host": "127.0.0.1",
            "port": "2222", "username": "vendor", "password": PASSWORD}
    assert client.post(reverse("connections:new"), form).status_code == 302
    connection = Connection.objects.get(name="Vendor drop")
    edit = reverse("connections:edit", args=[connection.pk])
    assert client.post(edit, {**form, "password": NEW_PASSWORD, "username": "vendor2"}).status_code == 302
    connection.refresh_from_db()
    assert connection.secret("password") == NEW_PASSWORD
    task = Task.objects.create(project=project, name="Upload", source_connection=source, query="SELECT 1")
    Destination.objects.create(task=task, connection=connection, folder="in")

    client.force_login(staff)
    admin_url = f"/admin/connections/connection/{connection.pk}/history/"
    admin_page = text(client.get(admin_url))
    for expected in ["Created connection Vendor drop", "Changed connection Vendor drop", "secrets password: set",
                     "secrets password: changed", "username: vendor → vendor2", "ada"]:
        assert expected in admin_page, expected
    record = Connection.history.filter(id=connection.pk).first()
    old_version = client.get(f"{admin_url}{record.history_id}/")  # simple-history's version form: not offered
    assert old_version.status_code == 302 and old_version["Location"] == admin_url
    pages = [old_version.content.decode()] + [raw(client.get(url)) for url in [
        admin_url, f"/tasks/{task.pk}/history/", f"/tasks/{task.pk}/", f"/projects/{project.pk}/history/",
        f"/admin/tasks/destination/{task.destinations.get().pk}/history/"]]
    rows = history_rows()
    for secret in (PASSWORD, NEW_PASSWORD):
        assert all(secret not in page for page in pages)
        assert secret not in rows
    assert "Vendor drop" in rows  # the rows were read: only the secret is absent


def test_a_sensitive_parameter_value_is_only_ever_changed(client, owner, staff, organization):
    client.force_login(owner)
    data = form_values(client, "/projects/new/")
    data.update({"organization": organization.pk, "name": "Nightly", "owner": owner.pk, "time_zone": "UTC",
                 "triggers-0-kind": "cron", "triggers-0-hour": "2", "triggers-0-minute": "30",
                 "parameters-0-key": "api_key", "parameters-0-value": SENSITIVE, "parameters-0-sensitive": "on"})
    assert client.post("/projects/new/", data).status_code == 302, data
    project = Project.objects.get(name="Nightly")
    edit = f"/projects/{project.pk}/edit/"
    data = form_values(client, edit)
    data.update({"parameters-0-value": NEW_SENSITIVE, "parameters-1-key": "region",
                 "parameters-1-value": "region-eu-1", "triggers-0-minute": "45"})
    assert client.post(edit, data).status_code == 302
    assert project.parameters.get(key="api_key").value == NEW_SENSITIVE

    page = text(client.get(f"/projects/{project.pk}/history/"))
    for expected in ["Changed parameter api_key", "value: changed", "Created parameter region",
                     "value: (blank) → region-eu-1", "Changed trigger Cron trigger", "minute: 30 → 45", "olivia"]:
        assert expected in page, expected

    # A value once shown becomes a secret: marking it sensitive hides its whole history from then on.
    data = form_values(client, edit)
    data.update({"parameters-1-value": "region-us-2", "parameters-1-sensitive": "on"})
    assert client.post(edit, data).status_code == 302
    region = project.parameters.get(key="region")
    client.force_login(staff)
    pages = [raw(client.get(url)) for url in [
        f"/projects/{project.pk}/history/", f"/projects/{project.pk}/",
        f"/admin/projects/parameter/{region.pk}/history/",
        f"/admin/projects/parameter/{project.parameters.get(key='api_key').pk}/history/",
        f"/admin/projects/project/{project.pk}/history/"]]
    assert "sensitive: no → yes" in text(client.get(f"/projects/{project.pk}/history/"))
    rows = history_rows()
    for secret in (SENSITIVE, NEW_SENSITIVE, "region-eu-1", "region-us-2"):
        assert all(secret not in page for page in pages), secret
        assert secret not in rows, secret


def test_changes_without_a_user_are_labelled_as_the_system(client, owner, project, organization, member):
    Parameter.objects.create(project=project, key="batch", value="1")
    with acting_as("seed_demo"):
        Parameter.objects.create(project=project, key="seeded", value="2")
    newbie = User.objects.create_user("newbie")
    organization.set_member(newbie, "viewer")
    client.force_login(owner)
    page = text(client.get(f"/projects/{project.pk}/history/"))
    assert "system: seed_demo" in page and "system: " in page.replace("system: seed_demo", "")

    organization.set_member(newbie, "editor", can_write_code=True)
    membership = organization.memberships.get(user=newbie)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    admin_page = text(client.get(f"/admin/projects/membership/{membership.pk}/history/"))
    assert "Created membership" in admin_page and "newbie" in admin_page
    assert "role: Viewer → Editor" in admin_page and "may write code: no → yes" in admin_page


def test_the_task_page_stays_fast_with_a_long_history(client, owner, project, source, outbox):
    task = Task.objects.create(project=project, name="Orders", source_connection=source, query="SELECT 1")
    client.force_login(owner)

    def queries():
        with CaptureQueriesContext(db) as captured:
            assert client.get(f"/tasks/{task.pk}/").status_code == 200
        return len(captured)

    before = queries()
    for number in range(30):
        task.retries = number
        task.save()
        Destination.objects.create(task=task, connection=outbox, folder=f"f{number}").delete()
    assert queries() == before
    history = client.get(f"/tasks/{task.pk}/history/")
    assert 'id="older-changes"' in history.content.decode()  # 91 changes: the latest 50, then a link
    assert text(history).count("Orders") >= 30
    assert 'id="older-changes"' not in client.get(f"/tasks/{task.pk}/history/?page=2").content.decode()


def test_the_admin_enable_and_disable_actions_are_recorded(client, staff, project, source):
    task = Task.objects.create(project=project, name="Feed", source_connection=source, query="SELECT 1")
    client.force_login(staff)
    client.post("/admin/tasks/task/", {"action": "disable", "_selected_action": [task.pk]})
    assert not Task.objects.get(pk=task.pk).enabled
    page = text(client.get(f"/admin/tasks/task/{task.pk}/history/"))
    assert f"{staff.username} Changed task Feed enabled: yes → no" in page


def test_key_rotation_re_encrypts_the_history_too(settings, client, org_admin, organization, project):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ETL_FERNET_KEYS = [old]
    client.force_login(org_admin)
    form = {"organization": organization.pk, "name": "Vendor drop", "kind": "sftp", "host": "127.0.0.1",
            "port": "2222", "username": "vendor", "password": PASSWORD}
    client.post(reverse("connections:new"), form)
    connection = Connection.objects.get(name="Vendor drop")
    client.post(reverse("connections:edit", args=[connection.pk]), {**form, "password": NEW_PASSWORD})
    parameter = Parameter.objects.create(project=project, key="region", value="region-eu-1")
    parameter.value = "region-us-2"
    parameter.save()
    records = Connection.history.count() + Parameter.history.count()
    settings.ETL_FERNET_KEYS = [new, old]
    call_command("rotate_secrets")
    settings.ETL_FERNET_KEYS = [new]  # the old key is gone: every history copy must still decrypt
    assert Connection.history.count() + Parameter.history.count() == records  # re-encrypting is no change
    assert [r.secrets.get("password") for r in Connection.history.order_by("history_id")] == [PASSWORD,
                                                                                              NEW_PASSWORD]
    assert "value: region-eu-1 → region-us-2" in text(client.get(f"/projects/{project.pk}/history/"))
