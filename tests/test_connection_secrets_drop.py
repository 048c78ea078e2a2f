"""Pointing a connection somewhere else drops its stored secrets unless they are entered again (the edit page).

A real listener socket stands in for a server of the person editing: it records every byte it is sent.
"""
import html
import socket
import threading

import pytest
from django.urls import reverse

from connections.models import Connection
from tests.test_connection_pages import page_text as tagless_text

pytestmark = pytest.mark.django_db


def page_text(response):
    """What a user reads: tags dropped, entities (an escaped apostrophe) shown as characters."""
    return html.unescape(tagless_text(response))


class FtpListener:
    """Speaks just enough FTP to be sent a user name and a password, and keeps everything it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            client, _ = self.sock.accept()
        except OSError:
            return
        with client:
            client.settimeout(10)
            client.sendall(b"220 not your vendor\r\n")
            buffer = b""
            while True:
                try:
                    data = client.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                self.received += data
                buffer += data
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line.split(b" ", 1)[0].upper()
                    reply = {b"USER": b"331 Send your password\r\n", b"PASS": b"530 Login incorrect\r\n"}.get(
                        verb, b"500 Not here\r\n")
                    client.sendall(reply)

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def listener():
    server = FtpListener()
    yield server
    server.close()


def ftp_form(connection, **changes):
    """What the edit page posts for an FTP connection left as it is (password boxes blank)."""
    data = {"organization": connection.organization_id, "name": connection.name, "kind": connection.kind,
            "description": connection.description, "host": connection.host, "port": connection.port,
            "username": connection.username, "path": connection.path, "password": "", "verify_tls": "on"}
    if (connection.options or {}).get("tls"):
        data["tls"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_the_edit_page_says_before_saving_which_changes_clear_the_password(client_of, org_admin, ftp_connection):
    page = page_text(client_of(org_admin).get(reverse("connections:edit", args=[ftp_connection.pk])))

    assert ("Changing where this connection points (Kind, Host, Port, User name, Base folder, Use TLS (FTPS), "
            "Verify the server's TLS certificate) clears its stored password; enter it again in the same save."
            in page)


def test_a_new_port_drops_the_password_and_the_test_never_sends_it(client_of, org_admin, ftp_connection, ftpd,
                                                                    listener):
    client = client_of(org_admin)

    saved = client.post(reverse("connections:edit", args=[ftp_connection.pk]),
                        ftp_form(ftp_connection, port=listener.port), follow=True)

    assert ("The stored password was cleared because the connection now points somewhere else (Port): enter it "
            "again before using it." in page_text(saved))
    ftp_connection.refresh_from_db()
    assert ftp_connection.port == listener.port and ftp_connection.secrets == {}
    assert "Password not set" in page_text(client.get(reverse("connections:detail", args=[ftp_connection.pk])))

    tested = client.post(reverse("connections:test", args=[ftp_connection.pk]), headers={"X-Requested-With": "fetch"})

    text = page_text(tested)
    assert "alert-danger" in tested.content.decode()
    assert "Authentication failed" in text and "no password or key is stored for this connection" in text
    listener.close()
    assert b"USER etl_ftp" in listener.received  # the client did talk to the listener...
    assert ftpd.password.encode() not in listener.received  # ...and never sent it the old password
    assert ftpd.password not in text


@pytest.mark.parametrize("changes, named", [
    ({"username": "someone-else"}, "User name"),
    ({"host": "localhost"}, "Host"),
    ({"tls": "on"}, "Use TLS (FTPS)"),
    ({"verify_tls": None}, "Verify the server's TLS certificate"),
    ({"kind": "sftp"}, "Kind"),
])
def test_every_addressing_change_drops_the_password(client_of, org_admin, ftp_connection, changes, named):
    saved = client_of(org_admin).post(reverse("connections:edit", args=[ftp_connection.pk]),
                                  ftp_form(ftp_connection, **changes), follow=True)

    assert f"points somewhere else ({named})" in page_text(saved)
    ftp_connection.refresh_from_db()
    assert ftp_connection.secrets == {}


def test_a_change_with_the_password_entered_again_keeps_the_new_one(client_of, org_admin, ftp_connection, ftpd):
    client = client_of(org_admin)
    folder = ftpd.make_folder("secrets-drop-new")

    saved = client.post(reverse("connections:edit", args=[ftp_connection.pk]),
                        ftp_form(ftp_connection, path=f"/{folder.name}", password=ftpd.password), follow=True)

    assert "cleared" not in page_text(saved)
    ftp_connection.refresh_from_db()
    assert ftp_connection.path == f"/{folder.name}" and ftp_connection.secrets == {"password": ftpd.password}
    tested = page_text(client.post(reverse("connections:test", args=[ftp_connection.pk])))
    assert f"Connected with plain FTP (not encrypted); 0 files in /{folder.name}." in tested


def test_a_description_change_keeps_the_password(client_of, org_admin, ftp_connection, ftpd):
    client = client_of(org_admin)

    saved = client.post(reverse("connections:edit", args=[ftp_connection.pk]),
                        ftp_form(ftp_connection, description="Vendor drop box, nightly"), follow=True)

    assert "cleared" not in page_text(saved) and "Connection Vendor FTP is saved." in page_text(saved)
    ftp_connection.refresh_from_db()
    assert ftp_connection.description == "Vendor drop box, nightly"
    assert ftp_connection.secrets == {"password": ftpd.password}
    tested = page_text(client.post(reverse("connections:test", args=[ftp_connection.pk])))
    assert "Connected with plain FTP (not encrypted)" in tested


def sftp_form(connection, **changes):
    data = {"organization": connection.organization_id, "name": connection.name, "kind": "sftp",
            "host": connection.host, "port": connection.port, "username": connection.username, "path": ""}
    data.update(changes)
    return data


PINNED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="


def test_a_new_port_also_forgets_the_pinned_host_key(client_of, org_admin, sftp_connection, closed_port):
    Connection.objects.filter(pk=sftp_connection.pk).update(host_key=PINNED)

    client_of(org_admin).post(reverse("connections:edit", args=[sftp_connection.pk]),
                          sftp_form(sftp_connection, port=closed_port))

    sftp_connection.refresh_from_db()
    assert sftp_connection.host_key == "" and sftp_connection.secrets == {}


def test_a_new_user_with_a_new_key_keeps_the_key_and_the_pinned_host_key(client_of, org_admin, sftp_connection):
    Connection.objects.filter(pk=sftp_connection.pk).update(host_key=PINNED)
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----"

    saved = client_of(org_admin).post(reverse("connections:edit", args=[sftp_connection.pk]),
                                  sftp_form(sftp_connection, username="deploy", private_key=key), follow=True)

    sftp_connection.refresh_from_db()
    # The password was not entered again, so it goes; the key typed in this save stays; same host, same host key.
    assert sftp_connection.secrets == {"private_key": key + "\n"}
    assert sftp_connection.host_key == PINNED
    assert "The stored password was cleared" in page_text(saved)
