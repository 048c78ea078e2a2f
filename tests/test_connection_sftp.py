"""SFTP against a real OpenSSH sshd: files arrive byte for byte, and every failure says what went wrong."""
import hashlib
import os
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from connections.models import Connection
from connections.protocols.base import ConnectorError
from connections.protocols.sftp_transfer import PACKET_MARGIN, SftpPipe, _string
from connections import services
from tests.fixtures.sftp_speed import drop_sessions
from tests.servers.common import free_port

ALL_BYTES = bytes(range(256))


def binary_file(path, mib=3):
    """Every byte value, line endings of all kinds and a NUL-heavy tail: what a text-mode transfer would break."""
    with open(path, "wb") as out:
        out.write(ALL_BYTES * (mib * 4096))
        out.write(b"line\r\nline\nline\r\x00\x00\xff")
    return path


def md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def failure(connection, action=lambda session: session.listdir("")):
    with pytest.raises(ConnectorError) as caught:
        with connection.connector().session() as session:
            action(session)
    return caught.value


def fingerprint_of(public_key_line, tmp_path):
    key_file = tmp_path / "key.pub"
    key_file.write_text(public_key_line + "\n")
    return subprocess.run(["ssh-keygen", "-lf", str(key_file)], check=True, capture_output=True,
                          text=True).stdout.split()[1]


# --- files arrive, and only complete ----------------------------------------------------------------

def test_round_trip_through_a_session(sftp_store, sftp_folder, tmp_path):
    source = binary_file(tmp_path / "report.bin")
    store = sftp_store.connector()
    with store.session() as session:
        session.put(source, store.join("report.bin"))
        session.put(source, store.join("notes.txt"))
        assert sorted(os.listdir(sftp_folder)) == ["notes.txt", "report.bin"]  # no ".part" left behind
        assert session.list(store.join(), "*.bin") == ["report.bin"]
        assert session.list(store.join(), "*") == ["notes.txt", "report.bin"]

        session.get(store.join("report.bin"), tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()

        session.rename(store.join("notes.txt"), store.join("notes-renamed.txt"))
        assert session.exists(store.join("notes-renamed.txt"))
        assert not session.exists(store.join("notes.txt"))
        session.delete(store.join("notes-renamed.txt"))
        assert not session.exists(store.join("notes-renamed.txt"))
    assert (sftp_folder / "report.bin").read_bytes() == source.read_bytes()
    assert sorted(os.listdir(sftp_folder)) == ["report.bin"]


def test_overwrite_off_refuses_an_existing_file_and_leaves_it_intact(sftp_store, sftp_folder, tmp_path):
    (sftp_folder / "daily.csv").write_bytes(b"yesterday's data\n")
    (tmp_path / "daily.csv").write_bytes(b"today's data\n")
    store = sftp_store.connector()
    with store.session() as session:
        with pytest.raises(ConnectorError) as caught:
            session.put(tmp_path / "daily.csv", store.join("daily.csv"), overwrite=False)
        assert "already exists" in caught.value.message
        session.put(tmp_path / "daily.csv", store.join("other.csv"))
        with pytest.raises(ConnectorError) as caught:
            session.rename(store.join("other.csv"), store.join("daily.csv"), overwrite=False)
        assert caught.value.step == "rename" and "already exists" in caught.value.message
    assert (sftp_folder / "daily.csv").read_bytes() == b"yesterday's data\n"
    assert sorted(os.listdir(sftp_folder)) == ["daily.csv", "other.csv"]


def test_overwrite_replaces_the_file(sftp_store, sftp_folder, tmp_path):
    (sftp_folder / "daily.csv").write_bytes(b"old\n")
    (tmp_path / "daily.csv").write_bytes(b"new\n")
    store = sftp_store.connector()
    with store.session() as session:
        session.put(tmp_path / "daily.csv", store.join("daily.csv"))
    assert (sftp_folder / "daily.csv").read_bytes() == b"new\n"


def test_fifty_megabytes_round_trip_with_matching_md5(sftp_store, sftp_folder, tmp_path):
    source = tmp_path / "large.bin"
    with open(source, "wb") as out:
        for _ in range(50):
            out.write(os.urandom(1 << 20))
    store = sftp_store.connector()
    with store.session() as session:
        session.put(source, store.join("large.bin"))
        session.get(store.join("large.bin"), tmp_path / "back.bin")
    assert md5(sftp_folder / "large.bin") == md5(source) == md5(tmp_path / "back.bin")


def test_empty_file_round_trips(sftp_store, sftp_folder, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    store = sftp_store.connector()
    with store.session() as session:
        session.put(tmp_path / "empty.csv", store.join("empty.csv"))
        session.get(store.join("empty.csv"), tmp_path / "back.csv")
    assert (sftp_folder / "empty.csv").read_bytes() == b"" == (tmp_path / "back.csv").read_bytes()


def test_missing_remote_file_is_named(sftp_store, tmp_path):
    error = failure(sftp_store, lambda session: session.get(session_path(sftp_store, "nope.csv"), tmp_path / "x"))
    assert error.step == "download" and "nope.csv does not exist" in error.message


def session_path(connection, name):
    return connection.connector().join(name)


# --- logging in ----------------------------------------------------------------------------------

def test_private_key_with_passphrase(make_sftp_connection, passphrase_key, sftp_folder):
    private_key, passphrase = passphrase_key
    (sftp_folder / "hello.txt").write_text("hi")
    connection = make_sftp_connection(path=str(sftp_folder),
                                      secrets={"private_key": private_key, "passphrase": passphrase})
    with connection.connector().session() as session:
        assert session.list(str(sftp_folder)) == ["hello.txt"]


def test_private_key_without_its_passphrase_says_so(make_sftp_connection, passphrase_key):
    connection = make_sftp_connection(secrets={"private_key": passphrase_key[0]})
    error = failure(connection)
    assert error.step == "authentication"
    assert error.message == "The private key is encrypted: enter its passphrase"


def test_wrong_password_never_shows_the_password(make_sftp_connection, sshd):
    password = "Not-The-Right-0ne"
    connection = Connection.objects.get(pk=make_sftp_connection(secrets={"password": password}).pk)
    error = failure(connection)
    assert error.step == "authentication"
    assert error.message == f"Authentication failed for user {sshd.username!r}"
    assert password not in str(error) and password not in repr(connection.secrets)
    ok, message = services.test_connection(connection)
    assert not ok and message.startswith("Authentication failed: ") and password not in message


# --- host key pinning ------------------------------------------------------------------------------

def test_host_key_is_pinned_on_first_connection(sftp_connection, sshd):
    assert sftp_connection.host_key == ""
    with sftp_connection.connector().session() as session:
        session.listdir("")
    assert Connection.objects.get(pk=sftp_connection.pk).host_key == sshd.host_public_key


def test_a_different_host_key_is_refused_with_its_fingerprint(make_sftp_connection, sshd, tmp_path):
    someone_else = " ".join((sshd.workdir / "user_key.pub").read_text().split()[:2])
    connection = make_sftp_connection(secrets={"password": sshd.password}, host_key=someone_else)
    error = failure(connection)
    assert error.step == "host key"
    assert fingerprint_of(sshd.host_public_key, tmp_path) in error.message
    assert "clear the pinned host key" in error.message
    assert Connection.objects.get(pk=connection.pk).host_key == someone_else
    ok, message = services.test_connection(connection)
    assert not ok and message.startswith("Host key failed: The server's host key has changed")


# --- reaching the server -------------------------------------------------------------------------

@pytest.mark.parametrize("host, port, step, words", [
    ("127.0.0.1", "closed", "refused", "nothing is listening"),
    ("no-such-host.invalid", 22, "name resolution", "'no-such-host.invalid' is not known"),
])
def test_unreachable_servers(make_sftp_connection, host, port, step, words):
    connection = make_sftp_connection(host=host, port=free_port() if port == "closed" else port,
                                      secrets={"password": "x-secret-x"}, options={"timeout": 2})
    error = failure(connection)
    assert error.step == step and words in error.message and error.retryable
    ok, message = services.test_connection(connection)
    assert not ok and message.startswith(f"{step.capitalize()} failed: ") and words in message


def test_a_server_that_never_answers_times_out(make_sftp_connection, silent_port):
    connection = make_sftp_connection(port=silent_port, secrets={"password": "x-secret-x"}, options={"timeout": 1})
    started = time.monotonic()
    error = failure(connection)
    assert time.monotonic() - started < 5
    assert error.step == "timeout" and "did not complete the SSH handshake within 1 seconds" in error.message
    ok, message = services.test_connection(connection)
    assert not ok and message.startswith("Timeout failed: ")


# --- writing where it is not allowed, and connections that drop -----------------------------------

def test_a_folder_the_login_cannot_write_is_a_permission_error(sftp_connection, locked_folder, tmp_path):
    (tmp_path / "report.csv").write_text("a,b\n")
    error = failure(sftp_connection,
                    lambda session: session.put(tmp_path / "report.csv", f"{locked_folder}/report.csv"))
    assert error.step == "permission" and str(locked_folder) in error.message
    assert os.listdir(locked_folder) == []


def test_a_dropped_connection_mid_upload_is_an_error_not_a_hang(make_sftp_connection, sshd, sftp_folder, tmp_path):
    source = tmp_path / "large.bin"
    with open(source, "wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    connection = make_sftp_connection(path=str(sftp_folder), secrets={"password": sshd.password},
                                      options={"timeout": 5})
    upload_started = threading.Event()

    def drop_when_data_arrives():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(entry.stat().st_size > 0 for entry in sftp_folder.iterdir()):
                upload_started.set()
                drop_sessions(sshd)
                return
            time.sleep(0.002)

    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        with connection.connector().session() as session:
            threading.Thread(target=drop_when_data_arrives, daemon=True).start()
            session.put(source, connection.connector().join("large.bin"))
    assert upload_started.is_set()
    assert time.monotonic() - started < 10
    assert caught.value.step in ("upload", "timeout") and caught.value.retryable
    assert f"{sftp_folder}/large.bin" in caught.value.message  # the name the user asked for, not the ".part"
    assert not (sftp_folder / "large.bin").exists()


def test_closing_a_connection_that_just_died_keeps_the_first_error(sftp_store, tmp_path):
    # The failure a user must read is the transfer's; closing the dead session fails too and must not hide it.
    store = sftp_store.connector()
    with pytest.raises(ConnectorError, match="the first error"):
        with store.session() as session:
            session.transport.sock.close()
            raise ConnectorError("the first error", retryable=True, step="upload")


@pytest.mark.parametrize("server_limit, packets", [(261120, 7), (32768, 1)])
def test_a_write_request_fills_whole_ssh_packets_within_the_servers_limit(server_limit, packets):
    # A request one byte over a packet boundary costs a nearly empty packet, as much CPU as a full one.
    pipe = SftpPipe.__new__(SftpPipe)
    pipe.channel, pipe.write_limit = SimpleNamespace(out_max_packet_size=32768), server_limit
    handle = _string(b"\x00\x00\x00\x01")
    chunk = pipe.write_chunk(handle)
    request = 4 + 1 + 4 + len(handle) + 8 + 4 + chunk
    assert chunk <= server_limit and request == packets * (32768 - PACKET_MARGIN)
