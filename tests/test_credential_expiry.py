"""Credential expiry: dates read by connection tests (TLS certificates, GPG keys) or typed in, the list of what
expires soon, reminders to the organization's admins, and the connection page's test history."""
import datetime

import pytest
from cryptography import x509
from django.utils import timezone

from connections.expiry import expiring_for, send_reminders
from connections.models import Connection
from connections import services
from projects import system_jobs
from tests import factories

pytestmark = pytest.mark.django_db


def certificate_end(path):
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.date()


def test_an_ftps_test_reads_the_servers_certificate_and_the_page_shows_it(ftps_connection, ftpd, org_admin,
                                                                           client_of):
    page = client_of(org_admin).post(f"/connections/{ftps_connection.pk}/test/").content.decode()

    ftps_connection.refresh_from_db()
    expires = certificate_end(ftpd.workdir / "cert.pem")
    assert ftps_connection.found_expiries == [{"what": "TLS certificate of 127.0.0.1",
                                               "expires_on": expires.isoformat()}]
    page = client_of(org_admin).get(f"/connections/{ftps_connection.pk}/").content.decode()
    assert f"TLS certificate of 127.0.0.1: <span class=\"text-danger fw-bold\">{expires:%Y-%m-%d}</span>" in page
    [test] = ftps_connection.tests.all()
    assert test.ok and test.by == org_admin.username
    assert org_admin.username in page.split('id="connection-tests"')[1]


def test_smtp_starttls_and_gpg_keys_are_read_too(smtp_connection, smtp_sink, gpg_connection, gpg_keys):
    smtp_connection.options = {**smtp_connection.options, "security": "starttls", "verify_tls": False}
    smtp_connection.save()
    assert services.test_connection(smtp_connection)[0]
    assert services.test_connection(gpg_connection)[0]

    smtp_connection.refresh_from_db()
    gpg_connection.refresh_from_db()
    assert smtp_connection.found_expiries == [{"what": "TLS certificate of 127.0.0.1",
                                               "expires_on": certificate_end(smtp_sink.certificate).isoformat()}]
    assert gpg_connection.found_expiries == [{"what": f"GPG key {gpg_keys.fingerprint[-16:]}",
                                              "expires_on": gpg_keys.expires.date().isoformat()}]


def test_a_failed_test_keeps_the_dates_already_known(ftps_connection, closed_port):
    assert services.test_connection(ftps_connection)[0]
    ftps_connection.refresh_from_db()
    known = ftps_connection.found_expiries
    ftps_connection.port = closed_port
    ftps_connection.save()
    ok, _ = services.test_connection(ftps_connection, timeout=3)
    ftps_connection.refresh_from_db()
    assert not ok and ftps_connection.found_expiries == known
    assert [test.ok for test in ftps_connection.tests.all()] == [False, True]


def test_what_expires_soon_is_listed_for_the_organizations_members_only(organization, member, outsider):
    today = timezone.localdate()
    soon = factories.connection(organization, "sftp", name="Vendor SFTP", host="127.0.0.1",
                                secret_expires_on=today + datetime.timedelta(days=12))
    factories.connection(organization, "sftp", name="Later", host="127.0.0.1",
                         secret_expires_on=today + datetime.timedelta(days=60))
    other = factories.connection(factories.organization("Globex"), "sftp", name="Theirs", host="127.0.0.1",
                                 secret_expires_on=today + datetime.timedelta(days=3))

    listed = expiring_for(member)
    assert [(expiry.connection.name, expiry.days_left()) for expiry in listed] == [("Vendor SFTP", 12)]
    assert expiring_for(outsider) == [] and other.pk not in [expiry.connection.pk for expiry in listed]
    assert [expiry.connection for expiry in expiring_for(member)] == [soon]


def test_admins_are_reminded_once_at_30_7_and_1_days(organization, org_admin, member, smtp_connection, mailbox):
    today = timezone.localdate()
    vendor = factories.connection(organization, "sftp", name="Vendor SFTP", host="127.0.0.1",
                                  secret_expires_on=today + datetime.timedelta(days=30))

    assert send_reminders(today) == "1 expiry reminder(s) sent"
    assert send_reminders(today) == "0 expiry reminder(s) sent"  # once per threshold
    [mail] = mailbox.received
    assert mail.recipients == [org_admin.email]  # admins only, not every member
    assert " ".join(mail.message["Subject"].split()) == (f"Vendor SFTP: password or key (as entered) expires in 30 days "
                                       f"({vendor.secret_expires_on:%Y-%m-%d})")

    assert send_reminders(today + datetime.timedelta(days=10)) == "0 expiry reminder(s) sent"  # 20 days left
    assert send_reminders(today + datetime.timedelta(days=23)) == "1 expiry reminder(s) sent"  # 7 days left
    # The job did not run on the last day before: the next run sends the 1-day reminder once.
    assert send_reminders(today + datetime.timedelta(days=30)) == "1 expiry reminder(s) sent"
    assert send_reminders(today + datetime.timedelta(days=31)) == "0 expiry reminder(s) sent"
    assert [" ".join(m.message["Subject"].split()).split(": ", 1)[1].rsplit(" (", 1)[0] for m in mailbox.received] == [
        "password or key (as entered) expires in 30 days", "password or key (as entered) expires in 7 days",
        "password or key (as entered) expires today"]


def test_without_a_mail_connection_the_job_says_why(organization, org_admin):
    factories.connection(organization, "sftp", name="Vendor SFTP", host="127.0.0.1",
                         secret_expires_on=timezone.localdate() + datetime.timedelta(days=5))
    assert send_reminders() == ("0 expiry reminder(s) sent; not sent: Vendor SFTP: the organization has no mail "
                                "(SMTP) connection to send reminders through")
    assert Connection.objects.get(name="Vendor SFTP").expiry_reminders == {}  # tried again tomorrow


def test_the_nightly_test_keeps_a_history(ftps_connection):
    system_jobs.test_connections()
    system_jobs.test_connections()
    assert [(test.ok, test.by) for test in ftps_connection.tests.all()] == [(True, ""), (True, "")]


def test_the_form_takes_the_passwords_expiry(organization, org_admin, client_of):
    vendor = factories.connection(organization, "sftp", name="Vendor SFTP", host="127.0.0.1", username="u")
    page = client_of(org_admin).post(f"/connections/{vendor.pk}/edit/", {
        "organization": organization.pk, "name": "Vendor SFTP", "kind": "sftp", "host": "127.0.0.1",
        "username": "u", "secret_expires_on": "2027-02-28"}, follow=True)
    assert page.status_code == 200
    vendor.refresh_from_db()
    assert vendor.secret_expires_on == datetime.date(2027, 2, 28)
    assert "password or key (as entered): " in page.content.decode()


def test_the_dashboard_lists_what_expires_soon(organization, member, client_of):
    factories.connection(organization, "sftp", name="Vendor SFTP", host="127.0.0.1",
                         secret_expires_on=timezone.localdate() + datetime.timedelta(days=9))
    page = client_of(member).get("/").content.decode()
    listed = page.split('id="dashboard-expiring"')[1].split("</ul>")[0]
    assert "Vendor SFTP</a>: password or key (as entered) expires" in listed and "(in 9 days)" in listed
