"""Paths on the portal's own server: only under ETL_LOCAL_ROOTS, never the portal's own files, checked by the
connection form and again when a connection is used."""
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.urls import reverse

from connections import local_paths
from connections.models import Connection
from connections.protocols import ConnectorError
from tests.fixtures.sources import log_text
from tests.test_connection_pages import page_text
from tests import factories

pytestmark = pytest.mark.django_db

ROOT_MESSAGE = "Folders on this server are limited to"
DATA_MESSAGE = "This path leads into the portal's own data folder"


def make_database(path):
    return factories.sqlite_database(path, "CREATE TABLE people (id INTEGER, name TEXT)",
                                     {"people": [(1, "Ada"), (2, "Grace")]})


@pytest.fixture
def root(settings, tmp_path):
    """The one allowed root, a folder of its own beside the test's data folder."""
    folder = tmp_path / "allowed"
    folder.mkdir()
    settings.ETL_LOCAL_ROOTS = [folder]
    return folder


def post_connection(client, organization, kind, path, name="On this server"):
    return client.post(reverse("connections:new"), {"organization": organization.pk, "name": name, "kind": kind,
                                                   "path": str(path)})


def path_error(response):
    """The error shown under the path field, as the user reads it."""
    assert response.status_code == 200, "the form was expected to be refused"
    field = re.search(r'id="div_id_path".*?(<div[^>]*invalid-feedback.*?</div>)', response.content.decode(), re.S)
    assert field, "no error under the path field"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", field.group(1))).split())


def app_database():
    name = str(connections["default"].settings_dict.get("NAME") or "")
    if not connections["default"].vendor == "sqlite" or not os.path.isfile(name):
        pytest.skip("the app database is not an SQLite file in this run")
    return Path(name)


# --- the form ------------------------------------------------------------------------------------------------

def test_paths_inside_a_root_are_saved_and_work(client_of, org_admin, organization, root):
    database = make_database(root / "shop" / "people.sqlite3")
    client = client_of(org_admin)

    assert post_connection(client, organization, "sqlite", database, name="Shop").status_code == 302
    assert post_connection(client, organization, "local", root, name="Outbox").status_code == 302

    shop = Connection.objects.get(name="Shop")
    tested = page_text(client.post(reverse("connections:test", args=[shop.pk])))
    assert "Connected; SELECT 1 returned 1." in tested
    outbox = Connection.objects.get(name="Outbox")
    assert "Connected; 0 files and 1 folder in the home folder." in page_text(  # the folder shop/
        client.post(reverse("connections:test", args=[outbox.pk])))


@pytest.mark.parametrize("kind, path", [("local", "/etc"), ("sqlite", "/etc/passwd"), ("local", "/home")])
def test_a_path_outside_the_roots_is_refused_next_to_the_field(client_of, org_admin, organization, root, kind, path):
    response = post_connection(client_of(org_admin), organization, kind, path)

    assert path_error(response) == f"{ROOT_MESSAGE} {root} (ETL_LOCAL_ROOTS)"
    assert not Connection.objects.filter(name="On this server").exists()


@pytest.mark.parametrize("what", ["app database", "fernet key", "data folder", "run folder", "holds data folder",
                                  "the whole server"])
def test_the_portals_own_files_are_refused_whatever_the_setting_says(client_of, org_admin, organization, settings,
                                                                     data_dir, tmp_path, what):
    settings.ETL_LOCAL_ROOTS = [Path("/")]  # everything allowed, except what never is
    (data_dir / "fernet.key").write_text("not a real key")
    (data_dir / "runs" / "1" / "1").mkdir(parents=True)
    kind, path, message = {
        "app database": ("sqlite", lambda: app_database(), "This path leads to the portal's own database"),
        "fernet key": ("sqlite", lambda: data_dir / "fernet.key", DATA_MESSAGE),
        "data folder": ("local", lambda: data_dir, DATA_MESSAGE),
        "run folder": ("local", lambda: data_dir / "runs" / "1", DATA_MESSAGE),
        "holds data folder": ("local", lambda: tmp_path, DATA_MESSAGE),
        "the whole server": ("local", lambda: "/", DATA_MESSAGE),
    }[what]

    response = post_connection(client_of(org_admin), organization, kind, path())

    assert message in path_error(response)
    assert not Connection.objects.filter(name="On this server").exists()


def test_key_files_are_refused_even_inside_a_root(client_of, org_admin, organization, root):
    (root / "server.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    (root / ".ssh").mkdir()

    client = client_of(org_admin)
    assert "This path leads to a key file" in path_error(
        post_connection(client, organization, "sqlite", root / "server.key"))
    assert "This path leads to a key file" in path_error(post_connection(client, organization, "local", root / ".ssh"))


def test_symlinks_and_dot_dot_cannot_climb_out_of_a_root(client_of, org_admin, organization, root, tmp_path, data_dir):
    outside = make_database(tmp_path / "outside" / "secret.sqlite3")
    (root / "to-outside").symlink_to(outside.parent)
    (root / "to-data").symlink_to(data_dir)
    (root.parent / "allowed-old").mkdir()  # a sibling whose name merely starts like the root
    client = client_of(org_admin)

    for kind, path, message in [
        ("sqlite", root / "to-outside" / "secret.sqlite3", ROOT_MESSAGE),
        ("local", root / "to-outside", ROOT_MESSAGE),
        ("local", root / "to-data", DATA_MESSAGE),
        ("sqlite", f"{root}/../outside/secret.sqlite3", ROOT_MESSAGE),
        ("local", f"{root}/sub/../../allowed-old", ROOT_MESSAGE),
        ("local", root.parent / "allowed-old", ROOT_MESSAGE),
    ]:
        assert message in path_error(post_connection(client, organization, kind, path)), path
    assert post_connection(client, organization, "local", f"{root}/sub/..").status_code == 302  # still inside


def test_a_relative_path_is_refused(client_of, org_admin, organization, root):
    response = post_connection(client_of(org_admin), organization, "local", "allowed")
    assert "Give an absolute path on this server (it begins with /)" in path_error(response)


# --- at run time, for connections saved past the form --------------------------------------------------------

def test_a_sqlite_connection_saved_directly_with_the_app_database_is_refused_at_run_time(
        organization, settings, source_task, run_task, dropbox):
    settings.ETL_LOCAL_ROOTS = [Path("/")]
    portal = Connection.objects.create(organization=organization, name="Portal DB", kind="sqlite",
                                       path=str(app_database()))
    task = source_task(source_connection=portal, query="SELECT session_key FROM django_session",
                       file_name="sessions.csv", destinations=[(dropbox, "")])

    run = run_task(task)

    assert run.status == "failed"
    assert "This path leads to the portal's own database" in run.error
    assert not list(dropbox.folder.iterdir())
    with pytest.raises(ConnectorError) as caught:
        portal.connector().execute("SELECT 1")
    assert caught.value.message == "This path leads to the portal's own database"


def test_connections_saved_before_the_setting_changed_are_refused_at_run_time(client_of, org_admin, organization, root,
                                                                             tmp_path, settings):
    database = make_database(tmp_path / "elsewhere" / "old.sqlite3")
    old_db = Connection.objects.create(organization=organization, name="Old DB", kind="sqlite", path=str(database))
    old_folder = Connection.objects.create(organization=organization, name="Etc", kind="local", path="/etc")
    client = client_of(org_admin)

    for connection in (old_db, old_folder):
        result = page_text(client.post(reverse("connections:test", args=[connection.pk])))
        assert f"{ROOT_MESSAGE} {root} (ETL_LOCAL_ROOTS)" in result and "Connected" not in result

    settings.ETL_LOCAL_ROOTS = [database.parent]  # once the admin allows the folder, it works
    assert "Connected; SELECT 1 returned 1." in page_text(client.post(reverse("connections:test", args=[old_db.pk])))


def test_sqlite_queries_cannot_attach_another_file(organization, root, tmp_path):
    source = Connection.objects.create(organization=organization, name="Shop", kind="sqlite",
                                       path=str(make_database(root / "shop.sqlite3")))
    other = make_database(tmp_path / "elsewhere" / "other.sqlite3")

    for sql in (f"ATTACH DATABASE '{other}' AS other", f"VACUUM INTO '{tmp_path / 'copy.sqlite3'}'"):
        with pytest.raises(ConnectorError) as caught:
            source.connector().execute(sql)
        assert caught.value.message == ("SQLite error: a query may not open another database file "
                                        "(ATTACH, VACUUM INTO)")
    assert not (tmp_path / "copy.sqlite3").exists()


def test_a_destination_folder_or_pattern_with_dot_dot_cannot_leave_the_folder(organization, root, source_task,
                                                                              run_task):
    source = Connection.objects.create(organization=organization, name="Shop", kind="sqlite",
                                       path=str(make_database(root / "shop.sqlite3")))
    outbox = root / "outbox"
    outbox.mkdir()
    folder = Connection.objects.create(organization=organization, name="Outbox", kind="local", path=str(outbox))

    escape = source_task(name="Escape", source_connection=source, query="SELECT * FROM people",
                         file_name="people.csv", destinations=[(folder, "../..")])
    run = run_task(escape)
    assert run.status == "failed" and "leaves the connection's folder" in run.error, log_text(run)
    assert not (root.parent / "people.csv").exists()

    (root / "secret.txt").write_text("not for the inbox")
    inbox = Connection.objects.create(organization=organization, name="Inbox", kind="local",
                                      path=str(root / "outbox"))
    pick = source_task(name="Pick", source_kind="files", source_connection=inbox, file_folder="..",
                       file_pattern="*.txt", destinations=[(folder, "in")])
    run = run_task(pick)
    assert run.status == "failed" and "leaves the connection's folder" in run.error, log_text(run)


def test_a_session_refuses_a_symlink_inside_the_folder_that_points_out(organization, root, data_dir):
    (data_dir / "fernet.key").write_text("not a real key")
    (root / "keys").symlink_to(data_dir)
    folder = Connection.objects.create(organization=organization, name="Outbox", kind="local", path=str(root))

    with folder.connector().session() as session, pytest.raises(ConnectorError) as caught:
        session.get("keys/fernet.key", str(root.parent / "copy"))
    assert "leaves the connection's folder" in caught.value.message


# --- the setting and the demo -------------------------------------------------------------------------------

def test_the_default_root_is_the_demo_folder_beside_the_data_folder(tmp_path):
    code = "from django.conf import settings; print(settings.ETL_LOCAL_ROOTS, settings.ETL_DEMO_DIR)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "etl_portal.settings", "ETL_DATA_DIR": str(tmp_path / "data")}
    env.pop("ETL_LOCAL_ROOTS", None)

    def settings_printed():  # in a new process, which reads the settings module as Django's start does
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, text=True, check=True).stdout
        return out.strip()

    demo = tmp_path.resolve() / "data-demo"
    assert settings_printed() == f"[PosixPath('{demo}')] {demo}"

    env["ETL_LOCAL_ROOTS"] = f" {tmp_path}/a/../b , /srv/extracts "
    assert settings_printed().startswith(f"[PosixPath('{tmp_path.resolve()}/b'), PosixPath('/srv/extracts')]")


def test_seed_demo_keeps_its_data_out_of_the_data_folder(data_dir):
    call_command("seed_demo")

    for name in ("Demo shop database", "Demo outbox"):
        path = local_paths.real(Connection.objects.get(name=name).path)
        assert local_paths.real(settings.ETL_DEMO_DIR) in path.parents
        assert local_paths.real(data_dir) not in path.parents
        assert local_paths.refusal(path, folder=name == "Demo outbox") == ""


@pytest.mark.parametrize("options, refused", [
    ({"driver": "/tmp/evil.so"}, "The ODBC driver '/tmp/evil.so' is not installed on this server"),
    ({"dsn": "/tmp/evil.dsn"}, "The data source '/tmp/evil.dsn' is not defined in odbc.ini"),
    ({"driver": "PostgreSQL Unicode", "extra": "Driver=/tmp/evil.so"}, "may not set driver"),
    ({"driver": "PostgreSQL Unicode", "extra": "FileDSN=/etc/odbc.dsn;SaveFile=/tmp/x"}, "may not set filedsn, savefile"),
])
def test_an_odbc_connection_loads_only_installed_drivers_never_a_library_path(organization, options, refused):
    from connections.protocols import ConnectorError

    connection = Connection(organization=organization, name="Evil", kind="odbc", host="127.0.0.1", options=options)
    with pytest.raises(ConnectorError) as caught:
        connection.connector().connection_string()
    assert refused in caught.value.message
