"""A connection kind is one class: declared here, in this test module alone, then used through the real pages.

The "memory folder" below keeps files in a dict. It is registered for each test only; no other module knows
it, yet the connection form offers it with its own fields and labels, the task form offers it as a
destination, and a run delivers a query's rows into it.
"""
import posixpath
import re
from pathlib import Path

import pytest
from django import forms
from django.urls import reverse

from connections.models import Connection
from connections.protocols import DATABASE, FILES, MAIL, ConnectorError, registry
from connections.protocols.base import FileSession, FileStore, Secret
from runs.execution import execute_run
from runs.models import Run
from tasks.models import Task

pytestmark = pytest.mark.django_db

SHELVES = {}  # shelf name -> {path: bytes}
LID_KEY = "open-sesame-lid-7"


class MemorySession(FileSession):
    def __init__(self, files):
        self.files = files

    def listdir(self, folder):
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        return [path[len(prefix):] for path in self.files if path.startswith(prefix) and "/" not in path[len(prefix):]]

    def get(self, remote_path, local_path):
        if remote_path not in self.files:
            raise ConnectorError(f"{remote_path} does not exist", step="download")
        Path(local_path).write_bytes(self.files[remote_path])
        return local_path

    def upload(self, local_path, remote_path):
        self.files[remote_path] = Path(local_path).read_bytes()

    def rename(self, old_path, new_path, overwrite=False):
        if new_path in self.files and not overwrite:
            raise ConnectorError(f"{new_path} already exists", step="rename")
        self.files[new_path] = self.files.pop(old_path)

    def delete(self, remote_path):
        self.files.pop(remote_path, None)

    def exists(self, remote_path):
        return remote_path in self.files


class MemoryFolder(FileStore):
    """A file store in this process's memory: a shelf (the database column) holding drawers (the path)."""

    kind = "memoryfolder"
    label = "Memory folder"
    fields = ("database", "path")
    field_labels = {"database": "Shelf name", "path": "Drawer"}
    option_fields = {"label_colour": forms.ChoiceField(label="Label colour", required=False,
                                                       choices=[("", "None"), ("red", "Red"), ("blue", "Blue")])}
    harmless_options = frozenset({"label_colour"})
    secret_fields = {"lid_key": Secret("Lid key")}

    def session(self):
        if self.secret("lid_key") != LID_KEY:
            raise ConnectorError("The lid key does not open this shelf", step="authentication")
        return MemorySession(SHELVES.setdefault(self.connection.database, {}))

    def join(self, *parts):
        return posixpath.join(*[part.strip("/") for part in (self.connection.path, *parts) if part.strip("/")])


@pytest.fixture
def memory_kind():
    SHELVES.clear()
    with registry.registered(MemoryFolder):
        yield MemoryFolder
    assert registry.get(MemoryFolder.kind) is None


def select_options(page, name):
    """The (value, text) of each option of the <select> named `name` on a page."""
    select = re.search(rf'<select name="{re.escape(name)}".*?</select>', page, flags=re.S).group(0)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def task_form(project, source, **fields):
    data = {
        "project": project.pk, "name": "People to memory", "run_rank": 1, "enabled": "on", "source_kind": "query",
        "source_connection": source.pk, "text_location": "inline", "query": "SELECT id, name FROM people ORDER BY id",
        "include_headers": "on",
        "file_name": "people.csv", "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal",
        "line_terminator": "lf", "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail",
        "file_handling": "as_is", "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
        "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "",
        "destinations-TOTAL_FORMS": 1, "destinations-INITIAL_FORMS": 0, "destinations-0-folder": "daily",
        "destinations-0-overwrite": "on", "destinations-0-position": 0,
    }
    for prefix in ("parameters", "conditions", "notifications", "dependencies"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(fields)
    return data


def test_a_kind_declared_in_a_test_is_created_on_the_page_picked_as_a_destination_and_receives_a_run(
        client_of, org_admin, owner, organization, project, sqlite_people, memory_kind):
    admin_client = client_of(org_admin)
    form_page = admin_client.get(reverse("connections:new")).content.decode()
    assert ("memoryfolder", "Memory folder") in select_options(form_page, "kind")
    for text in ("Label colour", "Lid key", '"memoryfolder": "Shelf name"', '"memoryfolder": "Drawer"'):
        assert text.replace('"', "&quot;") in form_page or text in form_page, text
    lid_box = re.search(r'data-kinds="([^"]*)"[^>]*>\s*<div[^>]*id="div_id_lid_key"', form_page).group(1).split()
    assert lid_box == ["memoryfolder"]

    response = admin_client.post(reverse("connections:new"), {
        "organization": organization.pk, "name": "Scratch shelf", "kind": "memoryfolder", "database": "shelf-a",
        "path": "/drawer", "label_colour": "blue", "lid_key": LID_KEY,
        "host": "ignored.example.com",  # not a field of this kind: neither validated nor saved
    })
    shelf = Connection.objects.get(name="Scratch shelf")
    assert response.status_code == 302 and response["Location"] == reverse("connections:detail", args=[shelf.pk])
    assert (shelf.kind, shelf.database, shelf.path, shelf.host) == ("memoryfolder", "shelf-a", "/drawer", "")
    assert shelf.options == {"label_colour": "blue"} and shelf.secret("lid_key") == LID_KEY
    detail = admin_client.get(reverse("connections:detail", args=[shelf.pk])).content.decode()
    for text in ("Memory folder", "Shelf name", "shelf-a", "Drawer", "Label colour", "blue", "Lid key", "stored"):
        assert text in detail, text
    assert LID_KEY not in detail
    admin_client.post(reverse("connections:test", args=[shelf.pk]))
    shelf.refresh_from_db()
    assert shelf.last_test_ok is True and shelf.last_test_message == "Connected; 0 files in drawer."

    owner_client = client_of(owner)
    new_task = owner_client.get("/tasks/new/").content.decode()
    destinations = dict(select_options(new_task, "destinations-0-connection"))
    assert destinations.get(str(shelf.pk)) == "Scratch shelf (Memory folder)"
    assert str(sqlite_people.pk) not in destinations  # a database cannot receive files

    response = owner_client.post("/tasks/new/", task_form(project, sqlite_people,
                                                          **{"destinations-0-connection": shelf.pk}))
    task = Task.objects.get(name="People to memory")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert task.destinations.get().connection == shelf

    run = Run.objects.create(task=task)
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert SHELVES["shelf-a"] == {"drawer/daily/people.csv": b"id,name\n1,Ada\n2,Grace\n"}
    assert run.files.get().name == "people.csv"


def test_a_picker_refuses_a_connection_without_its_capability(client_of, owner, project, sqlite_people,
                                                              memory_kind):
    response = client_of(owner).post("/tasks/new/", task_form(
        project, sqlite_people, **{"destinations-0-connection": sqlite_people.pk}))
    assert response.status_code == 200 and not Task.objects.filter(name="People to memory").exists()
    assert "Choose one of the listed connections: a destination needs a file store (" in response.content.decode()
    assert "Memory folder" in response.content.decode()  # the kinds that would do are named, the new one too


def test_capabilities_come_from_the_registry(organization, sqlite_people, memory_kind):
    shelf = Connection.objects.create(organization=organization, name="Shelf", kind="memoryfolder")
    mail = Connection.objects.create(organization=organization, name="Mail", kind="smtp", host="127.0.0.1")
    assert list(Connection.objects.with_capability(FILES)) == [shelf]
    assert list(Connection.objects.with_capability(DATABASE)) == [sqlite_people]
    assert set(Connection.objects.with_capability(MAIL, FILES)) == {shelf, mail}
    assert shelf.has(FILES) and not sqlite_people.has(FILES)
    assert "memoryfolder" in registry.kinds_with(FILES)


def test_an_unknown_kind_is_refused_by_the_model_and_the_form(client_of, org_admin, organization):
    from django.core.exceptions import ValidationError

    unknown = Connection(organization=organization, name="Ghost", kind="memoryfolder")  # not registered here
    with pytest.raises(ValidationError) as refused:
        unknown.full_clean()
    assert refused.value.message_dict["kind"] == ["'memoryfolder' is not a known connection kind"]
    response = client_of(org_admin).post(reverse("connections:new"), {
        "organization": organization.pk, "name": "Ghost", "kind": "memoryfolder"})
    assert response.status_code == 200 and not Connection.objects.filter(name="Ghost").exists()
    assert "Select a valid choice. memoryfolder is not one of the available choices." in response.content.decode()


def test_a_kind_is_registered_once_and_unregistered_after(memory_kind):
    class Impostor(MemoryFolder):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)
    assert registry.get("memoryfolder") is MemoryFolder


def test_the_admin_form_lists_a_kind_registered_after_start(client_of, staff, organization, memory_kind):
    client = client_of(staff)
    page = client.get(reverse("admin:connections_connection_add")).content.decode()
    assert 'name="label_colour"' in page and 'name="lid_key"' in page and "Lid key" in page
    assert re.search(r'name="lid_key"[^>]*data-kinds="memoryfolder"|data-kinds="memoryfolder"[^>]*name="lid_key"',
                     page)
    response = client.post(reverse("admin:connections_connection_add"), {
        "organization": organization.pk, "name": "Admin shelf", "kind": "memoryfolder", "database": "shelf-b",
        "label_colour": "red", "lid_key": LID_KEY, "host_key": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    shelf = Connection.objects.get(name="Admin shelf")
    assert shelf.options == {"label_colour": "red"} and shelf.secret("lid_key") == LID_KEY


def test_every_connection_picker_of_the_task_form_offers_only_its_capability(client_of, owner, organization, project,
                                                                             sqlite_people, memory_kind):
    made = {kind: Connection.objects.create(organization=organization, name=f"A {kind}", kind=kind)
            for kind in ("sftp", "smtp", "gpg", "web", "ssh", "memoryfolder")}
    page = client_of(owner).get("/tasks/new/").content.decode()

    def offered(name):
        return {text.split(" (", 1)[0] for value, text in select_options(page, name) if value}

    assert offered("destinations-0-connection") == {"A sftp", "A memoryfolder"}
    assert offered("conditions-0-connection") == {"People DB"}
    assert offered("notifications-0-smtp_connection") == {"A smtp"}
    assert offered("gpg_key") == {"A gpg"}
    assert offered("text_connection") == offered("processing_connection") == {"A sftp", "A web", "A memoryfolder"}
    # A script source may read any connection's settings; the source kind's own need is checked on save.
    assert offered("source_connection") == {connection.name for connection in made.values()} | {"People DB"}
