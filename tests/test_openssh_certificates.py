"""OpenSSH user certificates on SFTP and SSH connections, against the test sshd, which trusts a user CA.

It proves that a key listed nowhere on the server logs in with the certificate the CA signed for it (the test
button, a real run delivering a file, an SSH command), and that the same key without it is refused with words
saying so; that a certificate that has expired, is not valid yet, is for another key, is signed by a CA the
server does not trust, or is no certificate at all, is refused with a message saying which (on the form next to
the field where that can be known without connecting, else before connecting); and that the certificate's end
date is noted when the form is saved and by a successful test, shown on the connection page and on the
dashboard's expiring list, and replaced when a new certificate is saved. Secrets appear in no message.
"""
import datetime
import html
import os
import re
import subprocess
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import ApiToken
from connections.models import Connection
from tasks.models import Destination
from tests.fixtures.delivery import ORDERS_QUERY, log_text

# The Test button runs in a worker thread that pins the host key: it must see committed rows and may write.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]

PASSPHRASE = "Cert-key-Pa55phrase!"


# --- helpers --------------------------------------------------------------------------------------------------

def make_key(folder, name, passphrase=""):
    """(private key text, public key file) of a new ed25519 key that no authorized_keys lists."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(path)], check=True)
    return path.read_text(), path.with_name(name + ".pub")


def keygen_fingerprint(public_key_file):
    """The key's fingerprint as OpenSSH itself prints it."""
    return subprocess.run(["ssh-keygen", "-l", "-f", str(public_key_file)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def keygen_validity(certificate, folder):
    """(start, end) of a certificate as `ssh-keygen -L` reads it, in UTC; None where it prints no date."""
    path = folder / f"read-{uuid.uuid4().hex[:6]}-cert.pub"
    path.write_text(certificate)
    listed = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True,
                            env={**os.environ, "TZ": "UTC"}).stdout
    line = re.search(r"Valid: (.*)", listed).group(1).strip()
    if line == "forever":
        return None, None
    start, end = re.fullmatch(r"from (\S+) to (\S+)", line).groups()
    return datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)


def minute(moment):
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def page_text(response):
    """What a user reads: tags and scripts dropped, entities shown as characters, whitespace collapsed."""
    text = re.sub(r"<script.*?</script>|<[^>]+>", " ", response.content.decode(), flags=re.S)
    return " ".join(html.unescape(text).split())


def form_data(organization, sshd, kind="sftp", name="Vendor drop", **fields):
    data = {"organization": organization.pk, "name": name, "kind": kind, "host": sshd.host, "port": str(sshd.port),
            "username": sshd.username}
    if kind == "sftp":
        data["path"] = str(sshd.root)
    data.update(fields)
    return data


def save_form(client, data, connection=None):
    url = reverse("connections:edit", args=[connection.pk]) if connection else reverse("connections:new")
    return client.post(url, data, follow=True)


def press_test(client, connection):
    """The result box the Test button fills, as text."""
    response = client.post(reverse("connections:test", args=[connection.pk]), headers={"X-Requested-With": "fetch"})
    box = re.search(r'<div id="test-result".*?role="status">(.*?)</div>', response.content.decode(), re.S).group(1)
    return " ".join(html.unescape(box).split())


def list_items(page, list_id):
    """The text of each item of the list `list_id` on a page."""
    listed = page.content.decode().split(f'id="{list_id}"')[1].split("</ul>")[0]
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split())
            for item in re.split(r"<li[^>]*>", listed)[1:]]


def expiry_lines(client, connection):
    return list_items(client.get(reverse("connections:detail", args=[connection.pk])), "connection-expiries")


def dashboard_lines(client):
    return list_items(client.get("/"), "dashboard-expiring")


def settings_row(client, connection, label):
    page = page_text(client.get(reverse("connections:detail", args=[connection.pk])))
    return page.split(f" {label} ", 1)[1]


def days_until(day):
    return (day - timezone.localdate()).days


@pytest.fixture
def admin_page(client_of, org_admin):
    return client_of(org_admin)


@pytest.fixture
def member_page(member):
    """A member's own browser (client_of logs the one test client in as another user)."""
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def signed_key(sshd, tmp_path):
    """(private key text, public key file, certificate for a year) of a key only the CA vouches for."""
    private, public = make_key(tmp_path, "vendor_key")
    assert public.read_text().split()[1] not in (sshd.workdir / "authorized_keys").read_text()
    return private, public, sshd.certify(public, "ada@etl-portal", validity="-1d:+52w")


# --- logging in with a certificate ----------------------------------------------------------------------------

def test_a_key_only_the_ca_vouches_for_logs_in_over_sftp_and_a_run_delivers_through_it(
        admin_page, organization, sshd, signed_key, make_task, sqlite_orders, run_at):
    private, public, certificate = signed_key
    saved = save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=certificate))
    assert "Connection Vendor drop is saved." in page_text(saved)
    connection = Connection.objects.get(name="Vendor drop")
    assert connection.options == {"certificate": certificate.strip()} and connection.secret("private_key")

    result = press_test(admin_page, connection)
    assert result.startswith("Connected; ") and f"in {sshd.root}" in result

    folder = sshd.make_folder(f"cert-{uuid.uuid4().hex[:6]}")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    Destination.objects.create(task=task, connection=connection, folder=folder.name)
    run = run_at(task)
    assert run.status == "succeeded", log_text(run)
    assert (folder / "orders.csv").read_bytes().startswith(b"id,day,customer,amount,note")


def test_a_key_only_the_ca_vouches_for_runs_a_command_over_ssh(admin_page, organization, sshd, signed_key):
    private, _, certificate = signed_key
    save_form(admin_page, form_data(organization, sshd, kind="ssh", name="Batch host", private_key=private,
                                      certificate=certificate))
    connection = Connection.objects.get(name="Batch host")

    assert press_test(admin_page, connection) == (f"Connected to {sshd.host} as {sshd.username}; `echo ok` "
                                                     "printed ok.")
    lines = []
    status = connection.connector().run("whoami; echo signed-in", lambda stream, line: lines.append(line))
    assert (status, lines) == (0, [sshd.username, "signed-in"])


def test_a_passphrase_protected_key_with_a_certificate_logs_in_and_no_secret_is_shown(admin_page, organization,
                                                                                     sshd, tmp_path):
    private, public = make_key(tmp_path, "locked_key", passphrase=PASSPHRASE)
    certificate = sshd.certify(public, "locked@etl-portal", validity="-1d:+30d")
    saved = save_form(admin_page, form_data(organization, sshd, private_key=private, passphrase=PASSPHRASE,
                                              certificate=certificate))
    connection = Connection.objects.get(name="Vendor drop")
    assert press_test(admin_page, connection).startswith("Connected; ")
    page = admin_page.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    for secret in (PASSPHRASE, private.splitlines()[1]):
        assert secret not in page and secret not in saved.content.decode()


def test_without_its_certificate_the_same_key_is_refused_with_a_clear_message(admin_page, organization, sshd,
                                                                             signed_key):
    private, public, _ = signed_key
    save_form(admin_page, form_data(organization, sshd, private_key=private))
    connection = Connection.objects.get(name="Vendor drop")

    result = press_test(admin_page, connection)
    assert result == (f"Authentication failed: Authentication failed for user '{sshd.username}': the server does not "
                      f"accept the key {keygen_fingerprint(public)} (list its public key in the user's "
                      "authorized_keys, or set the OpenSSH certificate your SSH CA signed for it)")
    assert private.splitlines()[1] not in result


def test_a_certificate_from_a_ca_the_server_does_not_trust_is_refused_with_the_servers_answer(
        admin_page, organization, sshd, tmp_path):
    private, public = make_key(tmp_path, "stray_key")
    _, _ = make_key(tmp_path, "other_ca")
    certificate = sshd.certify(public, "stray@elsewhere", principals=["someone"], validity="-1d:+5d",
                               ca=tmp_path / "other_ca")
    save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=certificate))
    connection = Connection.objects.get(name="Vendor drop")

    assert press_test(admin_page, connection) == (
        f"Authentication failed: The server refused the OpenSSH certificate stray@elsewhere for user "
        f"'{sshd.username}' (Authentication failed.): check that the server trusts the CA that signed it (sshd's "
        f"TrustedUserCAKeys), and that it may log in as '{sshd.username}': the certificate names someone")
    connection.refresh_from_db()
    assert connection.host_key == sshd.host_public_key  # it did connect: the server refused


def test_a_certificate_without_a_private_key_is_refused(admin_page, organization, sshd, signed_key):
    _, _, certificate = signed_key
    response = save_form(admin_page, form_data(organization, sshd, password=sshd.password,
                                                 certificate=certificate))
    assert response.context["form"].errors["certificate"] == [
        "A certificate is used with the private key it was signed for: enter that private key too"]
    assert not Connection.objects.filter(name="Vendor drop").exists()

    # Stored without the form (an import, an older save): the test says so before connecting.
    connection = Connection.objects.create(organization=organization, name="No key", kind="sftp", host=sshd.host,
                                           port=sshd.port, username=sshd.username,
                                           secrets={"password": sshd.password}, options={"certificate": certificate})
    assert press_test(admin_page, connection) == (
        "Authentication failed: The OpenSSH certificate ada@etl-portal is set, but no private key: enter the "
        "private key it was signed for")
    connection.refresh_from_db()
    assert connection.host_key == ""  # never connected


# --- refused before connecting --------------------------------------------------------------------------------

def test_an_expired_certificate_names_its_end_date_on_the_form_and_before_connecting(
        admin_page, organization, sshd, tmp_path, make_task, sqlite_orders, run_at):
    private, public = make_key(tmp_path, "late_key")
    certificate = sshd.certify(public, "late@etl-portal", validity="-2d:-1d")
    _, end = keygen_validity(certificate, tmp_path)
    expected = (f"The OpenSSH certificate late@etl-portal expired on {minute(end)}: ask your SSH CA for a new one")

    response = save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=certificate))
    assert response.context["form"].errors["certificate"] == [expected]
    assert expected in page_text(response)

    connection = Connection.objects.create(organization=organization, name="Late", kind="sftp", host=sshd.host,
                                           port=sshd.port, username=sshd.username, path=str(sshd.root),
                                           secrets={"private_key": private}, options={"certificate": certificate})
    assert press_test(admin_page, connection) == f"Authentication failed: {expected}"
    connection.refresh_from_db()
    assert connection.host_key == ""  # refused before connecting: a connection would have pinned the host key

    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    Destination.objects.create(task=task, connection=connection)
    run = run_at(task)
    assert run.status == "failed" and expected in log_text(run)
    assert private.splitlines()[1] not in log_text(run)


def test_a_certificate_not_valid_yet_may_be_saved_and_says_when_it_starts(admin_page, organization, sshd,
                                                                          tmp_path):
    private, public = make_key(tmp_path, "early_key")
    certificate = sshd.certify(public, "early@etl-portal", validity="+1d:+3d")
    start, end = keygen_validity(certificate, tmp_path)
    assert "Connection Vendor drop is saved." in page_text(
        save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=certificate)))
    connection = Connection.objects.get(name="Vendor drop")

    assert press_test(admin_page, connection) == (
        f"Authentication failed: The OpenSSH certificate early@etl-portal is not valid before {minute(start)} "
        f"(valid {minute(start)} to {minute(end)})")
    assert Connection.objects.get(pk=connection.pk).host_key == ""


def test_a_certificate_for_another_key_is_a_field_error_with_both_fingerprints(admin_page, organization, sshd,
                                                                              tmp_path, signed_key):
    private, public, _ = signed_key
    _, other_public = make_key(tmp_path, "colleague_key")
    someone_elses = sshd.certify(other_public, "colleague@etl-portal", validity="-1d:+52w")
    expected = (f"The OpenSSH certificate colleague@etl-portal is for another key ({keygen_fingerprint(other_public)}) "
                f"than the private key ({keygen_fingerprint(public)}): paste the certificate of this key, or the key "
                "it was signed for")

    response = save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=someone_elses))
    assert response.context["form"].errors["certificate"] == [expected]
    assert expected in page_text(response) and private.splitlines()[1] not in response.content.decode()

    # With the key already stored, pasting only a new certificate is checked against the stored key.
    save_form(admin_page, form_data(organization, sshd, private_key=private))
    connection = Connection.objects.get(name="Vendor drop")
    response = save_form(admin_page, form_data(organization, sshd, certificate=someone_elses), connection)
    assert response.context["form"].errors["certificate"] == [expected]
    assert Connection.objects.get(pk=connection.pk).options == {}

    # Stored without the form: the test says the same before connecting.
    Connection.objects.filter(pk=connection.pk).update(options={"certificate": someone_elses})
    assert press_test(admin_page, connection) == f"Authentication failed: {expected}"
    assert Connection.objects.get(pk=connection.pk).host_key == ""


@pytest.mark.parametrize("text, message", [
    ("not a certificate at all", "This is not an OpenSSH certificate: paste the one line of the key's -cert.pub "
                                 "file (it starts with ssh-ed25519-cert-v01@openssh.com, "
                                 "ecdsa-sha2-nistp256-cert-v01@openssh.com or ssh-rsa-cert-v01@openssh.com)"),
    ("ssh-ed25519-cert-v01@openssh.com AAAAbroken ada", "This is not an OpenSSH certificate: paste the one line"),
    ("public key", "This is a public key, not a certificate: paste the -cert.pub file your SSH CA signed for the "
                   "key"),
    ("private key", "This is a private key: paste the certificate (the -cert.pub file), which is public"),
    ("host certificate", "This is a host certificate (it proves a server's identity): a login needs a user "
                         "certificate"),
    ("altered certificate", "The OpenSSH certificate ada@etl-portal does not match its CA's signature: it was "
                            "altered or damaged; paste it again"),
])
def test_text_that_is_no_user_certificate_is_a_field_error(admin_page, organization, sshd, tmp_path, signed_key,
                                                           text, message):
    private, public, certificate = signed_key
    if text == "altered certificate":  # one character of the CA's signature, at the end of the blob, changed
        kind, blob, comment = certificate.split()
        spot = len(blob) - 10
        text = f"{kind} {blob[:spot]}{'B' if blob[spot] == 'A' else 'A'}{blob[spot + 1:]} {comment}"
    elif text == "public key":
        text = public.read_text()
    elif text == "private key":
        text = private
    elif text == "host certificate":
        subprocess.run(["ssh-keygen", "-q", "-s", str(sshd.user_ca), "-h", "-I", "host", str(public)], check=True)
        text = public.with_name("vendor_key-cert.pub").read_text()
    response = save_form(admin_page, form_data(organization, sshd, kind="ssh", private_key=private,
                                                 certificate=text))
    [error] = response.context["form"].errors["certificate"]
    assert error.startswith(message)
    assert not Connection.objects.filter(name="Vendor drop").exists()
    assert private.splitlines()[1] not in error


def test_the_api_refuses_what_the_form_refuses(org_admin, organization, sshd):
    _, key = ApiToken.issue(org_admin, "script")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/v1/connections/", {
        "organization": organization.pk, "name": "Scripted", "kind": "sftp", "host": sshd.host, "port": sshd.port,
        "username": sshd.username, "secrets": {"password": sshd.password},
        "options": {"certificate": "garbage"}}, format="json")
    assert response.status_code == 400
    assert "This is not an OpenSSH certificate" in str(response.json())
    assert not Connection.objects.filter(name="Scripted").exists()


# --- its expiry -----------------------------------------------------------------------------------------------

def test_the_certificates_end_is_noted_on_save_shown_on_the_page_and_dashboard_and_replaced_by_a_new_one(
        admin_page, member_page, organization, sshd, signed_key):
    private, public, _ = signed_key
    soon = sshd.certify(public, "ada-2026", validity="-1d:+10d")
    start, end = keygen_validity(soon, public.parent)
    save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=soon))
    connection = Connection.objects.get(name="Vendor drop")

    # Read from the text when saved: no test has connected yet.
    assert connection.last_tested_at is None
    days = days_until(end.date())
    assert expiry_lines(admin_page, connection) == [
        f"OpenSSH certificate ada-2026: {end:%Y-%m-%d} (in {days} day{'s' if days != 1 else ''})"]
    assert (f"OpenSSH certificate key id ada-2026; principals: {sshd.username}; valid {minute(start)} to "
            f"{minute(end)}; for the key {keygen_fingerprint(public)}") in page_text(
        admin_page.get(reverse("connections:detail", args=[connection.pk])))
    assert (f"Vendor drop : OpenSSH certificate ada-2026 expires {end:%Y-%m-%d} (in {days} days)"
            in dashboard_lines(member_page))

    # The test reads it too, and keeps one line for it.
    assert press_test(admin_page, connection).startswith("Connected; ")
    connection.refresh_from_db()
    assert connection.found_expiries == [{"what": "OpenSSH certificate ada-2026", "expires_on": end.date().isoformat()}]

    # A renewed certificate (the key stays stored) replaces the date at once.
    renewed = sshd.certify(public, "ada-2027", validity="-1d:+20d")
    _, new_end = keygen_validity(renewed, public.parent)
    saved = save_form(admin_page, form_data(organization, sshd, certificate=renewed), connection)
    assert "Connection Vendor drop is saved." in page_text(saved) and "cleared" not in page_text(saved)
    connection.refresh_from_db()
    assert connection.secret("private_key") == private  # a new certificate is no new address
    new_days = days_until(new_end.date())
    assert expiry_lines(admin_page, connection) == [
        f"OpenSSH certificate ada-2027: {new_end:%Y-%m-%d} (in {new_days} days)"]
    listed = dashboard_lines(member_page)
    assert f"Vendor drop : OpenSSH certificate ada-2027 expires {new_end:%Y-%m-%d} (in {new_days} days)" in listed
    assert not [line for line in listed if "ada-2026" in line]
    assert press_test(admin_page, connection).startswith("Connected; ")
    assert expiry_lines(admin_page, connection) == [
        f"OpenSSH certificate ada-2027: {new_end:%Y-%m-%d} (in {new_days} days)"]

    # Removing the certificate removes its date.
    save_form(admin_page, form_data(organization, sshd, certificate=""), connection)
    connection.refresh_from_db()
    assert connection.found_expiries == [] and not [line for line in dashboard_lines(member_page)
                                                    if "Vendor drop" in line]


def test_a_certificate_valid_forever_has_no_expiry(admin_page, organization, sshd, signed_key):
    private, public, _ = signed_key
    forever = sshd.certify(public, "ada-forever")
    assert keygen_validity(forever, public.parent) == (None, None)
    save_form(admin_page, form_data(organization, sshd, private_key=private, certificate=forever))
    connection = Connection.objects.get(name="Vendor drop")

    assert press_test(admin_page, connection).startswith("Connected; ")
    connection.refresh_from_db()
    assert connection.found_expiries == []
    assert settings_row(admin_page, connection, "OpenSSH certificate").startswith(
        f"key id ada-forever; principals: {sshd.username}; valid always; for the key {keygen_fingerprint(public)}")
    assert expiry_lines(admin_page, connection) == [
        "No expiry known: enter the password's on the form; certificates and keys are read by the test."]
