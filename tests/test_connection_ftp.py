"""FTP and FTPS against a real pyftpdlib server: files arrive whole, failures say which step failed."""
import socket
import threading
import time
import uuid

import pytest

from connections.models import Connection
from connections.protocols import ConnectorError
from connections import services
from runs.execution import execute_run
from runs.models import Run
from tests.file_stores import ALL_BYTES, local_file
from tests.servers.common import free_port
from tests.servers.ftpd import PASSWORD, USER, launch
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def legacy_ftp_connection(organization, ftpd):
    """A server like IIS: no MLSD/MLST, and rename refuses to replace an existing file."""
    return Connection.objects.create(organization=organization, name="Old FTP", kind="ftp", host=ftpd.host,
                                     port=ftpd.legacy_port, username=ftpd.username,
                                     secrets={"password": ftpd.password})


@pytest.fixture(params=["ftp_connection", "ftps_connection", "legacy_ftp_connection"])
def any_ftp(request, ftpd):
    """Each kind of FTP connection, based in a fresh folder of the server."""
    connection = request.getfixturevalue(request.param)
    folder = ftpd.make_folder(f"t-{uuid.uuid4().hex[:8]}")
    connection.path = folder.name
    connection.save()
    return connection, folder


# The round trip (put, list, get, rename, delete, overwrite) is in tests/test_file_store_contract.py.


def test_overwrite_off_refuses_an_existing_file_and_leaves_it_intact(any_ftp, tmp_path):
    connection, folder = any_ftp
    (folder / "report.csv").write_bytes(b"original")
    store = connection.connector()
    with store.session() as session, pytest.raises(ConnectorError) as caught:
        session.put(local_file(tmp_path, "r.csv", b"replacement"), store.join("report.csv"), overwrite=False)
    assert caught.value.message == f"{folder.name}/report.csv already exists and overwriting is off"
    assert (folder / "report.csv").read_bytes() == b"original"
    assert [p.name for p in folder.iterdir()] == ["report.csv"]


def test_rename_without_overwrite_refuses_an_existing_target(ftp_connection, ftpd, tmp_path):
    folder = ftpd.make_folder(f"t-{uuid.uuid4().hex[:8]}")
    (folder / "a").write_bytes(b"a")
    (folder / "b").write_bytes(b"b")
    with ftp_connection.connector().session() as session, pytest.raises(ConnectorError) as caught:
        session.rename(f"{folder.name}/a", f"{folder.name}/b")
    assert caught.value.step == "rename" and "already exists" in caught.value.message
    assert (folder / "b").read_bytes() == b"b"


def test_connection_test_reports_success(ftp_connection, ftps_connection):
    assert services.test_connection(ftp_connection) == (
        True, "Connected with plain FTP (not encrypted); 0 files in the login folder.")
    assert services.test_connection(ftps_connection) == (
        True, "Connected with TLS on the control and data connections; 0 files in the login folder.")


def test_wrong_password_is_an_authentication_failure_without_the_password(ftp_connection):
    ftp_connection.secrets = {"password": "Wrong-Secret-4711"}
    ftp_connection.save()
    ok, message = services.test_connection(ftp_connection)
    assert not ok
    assert message == ("Authentication failed: Authentication failed for user 'etl_ftp': check the user name and "
                       "password")
    assert "Wrong-Secret-4711" not in message


def test_nothing_listening_is_refused(ftp_connection):
    port = free_port()
    ftp_connection.port = port
    ftp_connection.save()
    assert services.test_connection(ftp_connection) == (
        False, f"Refused failed: Connection refused by 127.0.0.1:{port}: nothing is listening there")


def test_unknown_host_is_a_name_resolution_failure(ftp_connection):
    ftp_connection.host = "no-such-host.invalid"
    ftp_connection.save()
    with pytest.raises(ConnectorError) as caught:
        ftp_connection.connector().test()
    assert caught.value.step == "name resolution" and caught.value.retryable
    assert "Name resolution failed" in caught.value.message and "no-such-host.invalid" in caught.value.message


def test_permission_denied_on_folders(ftp_connection, ftpd, tmp_path):
    store = ftp_connection.connector()
    with store.session() as session:
        with pytest.raises(ConnectorError) as listing:
            session.listdir(ftpd.locked_folder)
        with pytest.raises(ConnectorError) as upload:
            session.put(local_file(tmp_path, "x.csv", b"x"), f"{ftpd.readonly_folder}/x.csv")
    assert listing.value.step == "permission"
    assert listing.value.message.startswith("Permission denied on folder locked")
    assert upload.value.step == "permission"
    assert upload.value.message.startswith("Permission denied on folder readonly")
    assert sorted(p.name for p in (ftpd.root / ftpd.readonly_folder).iterdir()) == ["notice.txt"]


def test_missing_folder_and_file(ftp_connection, tmp_path):
    with ftp_connection.connector().session() as session:
        with pytest.raises(ConnectorError) as listing:
            session.listdir("no-such-folder")
        with pytest.raises(ConnectorError) as download:
            session.get("no-such-file.csv", str(tmp_path / "x"))
    assert listing.value.step == "folder" and "no-such-folder does not exist" in listing.value.message
    assert download.value.step == "download" and "no-such-file.csv does not exist" in download.value.message


def test_tls_certificate_is_verified_by_default(ftps_connection):
    ftps_connection.options = {"tls": True}
    ftps_connection.save()
    ok, message = services.test_connection(ftps_connection)
    assert not ok
    assert message.startswith("Connect failed: The TLS certificate of 127.0.0.1:")
    assert "self-signed" in message and "turn off certificate verification" in message


def test_a_silent_server_times_out(ftp_connection):
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        ftp_connection.port = silent.getsockname()[1]
        ftp_connection.options = {"timeout": 1}
        started = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            ftp_connection.connector().test()
    assert time.monotonic() - started < 5
    assert caught.value.step == "timeout" and caught.value.retryable
    assert "sent no FTP greeting within 1 seconds" in caught.value.message


def test_a_connection_dropped_mid_transfer_is_a_retryable_error(organization, tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    (root / "big.bin").write_bytes(ALL_BYTES * 128)  # 2 MiB at 256 KiB/s: the transfer is cut early
    port = free_port()
    process = launch(tmp_path, root, port, throttle=256 * 1024)
    connection = Connection(organization=organization, name="Flaky", kind="ftp", host="127.0.0.1", port=port,
                            username=USER, secrets={"password": PASSWORD}, options={"timeout": 3})
    cut = threading.Timer(0.5, process.kill)
    try:
        with connection.connector().session() as session:
            cut.start()
            started = time.monotonic()
            with pytest.raises(ConnectorError) as caught:
                session.get("big.bin", str(tmp_path / "big.bin"))
    finally:
        cut.cancel()
        process.kill()
        process.wait()
    assert time.monotonic() - started < 5
    assert caught.value.retryable and caught.value.step == "download"
    assert "broke during the download of big.bin" in caught.value.message


def test_a_run_delivers_its_file_to_the_ftp_server(ftp_connection, ftpd, organization, make_task, tmp_path):
    source = factories.sqlite_source(organization, tmp_path / "source.sqlite3",
                                     "CREATE TABLE people (id INTEGER, name TEXT)",
                                     {"people": [(1, "Ann"), (2, "Bob, Jr.")]}, name="SQLite")
    folder = ftpd.make_folder(f"run-{uuid.uuid4().hex[:8]}")
    task = make_task(source, "SELECT id, name FROM people ORDER BY id", [(ftp_connection, folder.name)],
                     file_name="people.csv")
    run = Run.objects.create(task=task)

    execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert (folder / "people.csv").read_bytes() == b'id,name\n1,Ann\n2,"Bob, Jr."\n'
    assert [p.name for p in folder.iterdir()] == ["people.csv"]
    [delivery] = run.files.get().deliveries
    assert {key: delivery[key] for key in ("connection", "kind", "path", "remote_size", "verified")} == {
        "connection": "Vendor FTP", "kind": "ftp", "path": f"{folder.name}/people.csv", "remote_size": 27,
        "verified": "size and sha256"}
