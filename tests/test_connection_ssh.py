"""SSH commands against a real sshd: streamed output, exit status, timeouts, cancelling, logins, host keys."""
import subprocess
import threading
import time

import pytest

from connections.models import Connection
from connections.protocols.base import ConnectorError
from tests.servers.common import free_port

pytestmark = pytest.mark.django_db


def run_collecting(connector, command, **kwargs):
    lines = []
    status = connector.run(command, lambda stream, line: lines.append((stream, line, time.monotonic())), **kwargs)
    return status, lines


def remote_processes(sshd, pattern):
    found = subprocess.run(["pgrep", "-u", sshd.username, "-f", pattern], capture_output=True, text=True)
    return found.stdout.split()


def make_key(tmp_path, name, passphrase=""):
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(path)], check=True)
    return path.read_text(), (path.with_suffix(".pub")).read_text()


def test_output_streams_line_by_line_in_order_and_the_exit_status_is_returned(ssh_connection):
    started = time.monotonic()
    status, lines = run_collecting(
        ssh_connection.connector(),
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done; exit 3",
    )
    finished = time.monotonic()
    assert status == 3
    assert [(stream, line) for stream, line, _ in lines] == [
        ("stdout", "out1"), ("stderr", "err1"), ("stdout", "out2"), ("stderr", "err2"),
        ("stdout", "out3"), ("stderr", "err3"),
    ]
    # Streamed as they came, not collected at the end.
    assert lines[0][2] - started < finished - started - 0.15


def test_a_command_killed_by_a_signal_has_status_minus_one(ssh_connection):
    assert run_collecting(ssh_connection.connector(), "echo bye; kill -9 $$")[0] == -1


def test_partial_lines_utf8_and_environment(ssh_connection):
    status, lines = run_collecting(
        ssh_connection.connector(),
        "printf 'h\\303\\251llo %s\\r\\nbad \\377 byte\\nno newline' \"$GREETING\"",
        env={"GREETING": "it's a \"test\" $HOME"},
    )
    assert status == 0
    assert [line for _, line, _ in lines] == ["héllo it's a \"test\" $HOME", "bad \ufffd byte", "no newline"]


def test_a_bad_environment_name_is_refused_before_connecting(ssh_connection):
    with pytest.raises(ConnectorError) as caught:
        ssh_connection.connector().run("true", print, env={"A B": "x"})
    assert caught.value.step == "settings"


def test_a_hung_command_is_stopped_at_the_timeout(ssh_connection, sshd):
    marker = "sleep 31.5"
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        ssh_connection.connector().run(marker, print, timeout=1)
    assert time.monotonic() - started < 4
    assert caught.value.step == "timeout"
    assert caught.value.message == "The command did not finish within 1 seconds and was stopped"
    deadline = time.monotonic() + 3
    while remote_processes(sshd, marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not remote_processes(sshd, marker), "the command kept running on the server"


def test_the_stop_event_cancels_a_running_command(ssh_connection):
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        ssh_connection.connector().run("echo started; sleep 30", print, stop=stop)
    assert time.monotonic() - started < 3
    assert (caught.value.step, caught.value.message) == ("command", "Cancelled")


def test_key_login_pins_the_host_key_on_first_use(ssh_connection, sshd):
    assert ssh_connection.host_key == ""
    assert ssh_connection.connector().test().startswith(f"Connected to {sshd.host} as {sshd.username}")
    ssh_connection.refresh_from_db()
    assert ssh_connection.host_key == sshd.host_public_key


def test_password_login(organization, sshd):
    connection = Connection.objects.create(organization=organization, name="pw", kind="ssh", host=sshd.host,
                                           port=sshd.port, username=sshd.username, secrets={"password": sshd.password})
    status, lines = run_collecting(connection.connector(), "whoami")
    assert (status, [line for _, line, _ in lines]) == (0, [sshd.username])


def test_passphrase_protected_key(organization, sshd, tmp_path):
    private, public = make_key(tmp_path, "locked", passphrase="open sesame")
    with open(sshd.workdir / "authorized_keys", "a") as authorized:
        authorized.write(public)
    connection = Connection.objects.create(
        organization=organization, name="locked", kind="ssh", host=sshd.host, port=sshd.port, username=sshd.username,
        secrets={"private_key": private, "passphrase": "open sesame"},
    )
    assert connection.connector().test().startswith("Connected")

    connection.secrets = {"private_key": private, "passphrase": "wrong phrase"}
    with pytest.raises(ConnectorError) as caught:
        connection.connector().test()
    assert caught.value.step == "authentication" and "wrong phrase" not in caught.value.message


def test_a_wrong_password_is_an_authentication_failure_that_never_shows_the_password(organization, sshd):
    connection = Connection(organization=organization, kind="ssh", host=sshd.host, port=sshd.port,
                            username=sshd.username, secrets={"password": "Not-The-Pa55word"})
    with pytest.raises(ConnectorError) as caught:
        connection.connector().test()
    assert caught.value.step == "authentication"
    assert caught.value.message == f"Authentication failed for user {sshd.username!r}"
    assert "Not-The-Pa55word" not in str(caught.value) + repr(caught.value.args)


def test_a_changed_host_key_is_refused(ssh_connection, tmp_path):
    _, other_public = make_key(tmp_path, "other_host")
    ssh_connection.host_key = " ".join(other_public.split()[:2])
    ssh_connection.save()
    with pytest.raises(ConnectorError) as caught:
        ssh_connection.connector().test()
    assert caught.value.step == "host key"
    assert "host key has changed" in caught.value.message


def test_nothing_listening_is_refused(organization, sshd):
    connection = Connection(organization=organization, kind="ssh", host="127.0.0.1", port=free_port(),
                            username="x", secrets={"password": "x"})
    with pytest.raises(ConnectorError) as caught:
        connection.connector().test()
    assert caught.value.step == "refused"


def test_an_unknown_host_fails_name_resolution(organization):
    connection = Connection(organization=organization, kind="ssh", host="no-such-host.invalid", port=22,
                            username="x", secrets={"password": "x"})
    with pytest.raises(ConnectorError) as caught:
        connection.connector().test()
    assert caught.value.step == "name resolution"
    assert "no-such-host.invalid" in caught.value.message
