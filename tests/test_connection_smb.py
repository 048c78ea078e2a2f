"""SMB against a real Samba smbd: files arrive whole, failures say which step failed."""
import socket
import time
import uuid

import pytest

from connections import services
from connections.protocols import ConnectorError
from runs.execution import execute_run
from runs.models import Run
from tests.file_stores import local_file
from tests.servers.common import free_port
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def based_smb(smb_connection, smbd):
    """The SMB connection, based in a fresh folder of the share."""
    folder = smbd.make_folder(f"t-{uuid.uuid4().hex[:8]}")
    smb_connection.path = folder.name
    smb_connection.save()
    return smb_connection, folder


# The round trip (put, list, get, rename, delete, overwrite) is in tests/test_file_store_contract.py.


def test_backslashes_in_the_base_folder_work(based_smb, smbd, tmp_path):
    connection, folder = based_smb
    smbd.make_folder(f"{folder.name}/deep")
    connection.path = f"\\{folder.name}\\deep"
    store = connection.connector()
    assert store.join("x.csv") == f"{folder.name}/deep/x.csv"
    with store.session() as session:
        session.put(local_file(tmp_path, "x.csv", b"x"), store.join("x.csv"))
    assert (folder / "deep" / "x.csv").read_bytes() == b"x"


def test_overwrite_off_refuses_an_existing_file_and_leaves_it_intact(based_smb, tmp_path):
    connection, folder = based_smb
    (folder / "report.csv").write_bytes(b"original")
    store = connection.connector()
    with store.session() as session, pytest.raises(ConnectorError) as caught:
        session.put(local_file(tmp_path, "r.csv", b"replacement"), store.join("report.csv"), overwrite=False)
    assert caught.value.message == f"{folder.name}/report.csv already exists and overwriting is off"
    assert (folder / "report.csv").read_bytes() == b"original"
    assert [p.name for p in folder.iterdir()] == ["report.csv"]


def test_connection_test_reports_success(based_smb):
    connection, folder = based_smb
    (folder / "one.csv").write_bytes(b"1")
    assert services.test_connection(connection) == (
        True, f"Connected to share 'etl' on 127.0.0.1; 1 file and 0 folders in folder {folder.name}.")


def test_wrong_password_is_an_authentication_failure_without_the_password(smb_connection):
    smb_connection.secrets = {"password": "Wrong-Secret-4711"}
    smb_connection.save()
    ok, message = services.test_connection(smb_connection)
    assert not ok
    assert message == ("Authentication failed: Authentication failed for user 'etl_smb_test': check the user name, "
                       "password and domain")
    assert "Wrong-Secret-4711" not in message


def test_nothing_listening_is_refused(smb_connection):
    port = free_port()
    smb_connection.port = port
    smb_connection.save()
    assert services.test_connection(smb_connection) == (
        False, f"Refused failed: Connection refused by 127.0.0.1:{port}: nothing is listening there")


def test_unknown_host_is_a_name_resolution_failure(smb_connection):
    smb_connection.host = "no-such-host.invalid"
    with pytest.raises(ConnectorError) as caught:
        smb_connection.connector().test()
    assert caught.value.step == "name resolution" and caught.value.retryable
    assert "Name resolution failed" in caught.value.message and "no-such-host.invalid" in caught.value.message


def test_a_missing_share_is_a_settings_error(smb_connection):
    smb_connection.database = "nosuchshare"
    smb_connection.save()
    ok, message = services.test_connection(smb_connection)
    assert (ok, message) == (False, "Settings failed: The share 'nosuchshare' does not exist on 127.0.0.1 "
                                    "(or this user may not see it)")


def test_permission_denied_on_folders(smb_connection, smbd, tmp_path):
    store = smb_connection.connector()
    with store.session() as session:
        with pytest.raises(ConnectorError) as listing:
            session.listdir(smbd.locked_folder)
        with pytest.raises(ConnectorError) as upload:
            session.put(local_file(tmp_path, "x.csv", b"x"), f"{smbd.readonly_folder}/x.csv")
    assert listing.value.step == "permission"
    assert listing.value.message == "Permission denied on folder locked in share 'etl'"
    assert upload.value.step == "permission"
    assert upload.value.message == "Permission denied on folder readonly in share 'etl'"
    assert sorted(p.name for p in (smbd.root / smbd.readonly_folder).iterdir()) == ["notice.txt"]


def test_missing_folder_and_file(smb_connection, tmp_path):
    with smb_connection.connector().session() as session:
        with pytest.raises(ConnectorError) as listing:
            session.listdir("no-such-folder")
        with pytest.raises(ConnectorError) as download:
            session.get("no-such-file.csv", str(tmp_path / "x"))
        with pytest.raises(ConnectorError) as delete:
            session.delete("no-such-file.csv")
    assert (listing.value.step, listing.value.message) == (
        "folder", "folder no-such-folder does not exist in share 'etl'")
    assert (download.value.step, download.value.message) == (
        "download", "no-such-file.csv does not exist in share 'etl'")
    assert (delete.value.step, delete.value.message) == ("delete", "no-such-file.csv does not exist in share 'etl'")


def test_a_silent_server_times_out(smb_connection):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        smb_connection.port = silent.getsockname()[1]
        smb_connection.options = {"timeout": 1}
        started = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            smb_connection.connector().test()
    assert time.monotonic() - started < 5
    assert caught.value.step == "timeout" and caught.value.retryable


def test_a_run_delivers_its_file_to_the_share(smb_connection, smbd, organization, make_task, tmp_path):
    source = factories.sqlite_source(organization, tmp_path / "source.sqlite3",
                                     "CREATE TABLE people (id INTEGER, name TEXT)",
                                     {"people": [(1, "Ann"), (2, "Bob, Jr.")]}, name="SQLite")
    folder = smbd.make_folder(f"run-{uuid.uuid4().hex[:8]}")
    task = make_task(source, "SELECT id, name FROM people ORDER BY id", [(smb_connection, folder.name)],
                     file_name="people.csv")
    run = Run.objects.create(task=task)

    execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert (folder / "people.csv").read_bytes() == b'id,name\n1,Ann\n2,"Bob, Jr."\n'
    assert [p.name for p in folder.iterdir()] == ["people.csv"]
    [delivery] = run.files.get().deliveries
    assert {key: delivery[key] for key in ("connection", "kind", "path", "remote_size", "verified")} == {
        "connection": "Finance share", "kind": "smb", "path": f"{folder.name}/people.csv", "remote_size": 27,
        "verified": "size"}
