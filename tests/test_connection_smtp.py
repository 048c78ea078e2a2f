"""SMTP connections against a real aiosmtpd server: what arrives, and each failure a user meets."""
import os
import smtplib
from email.message import EmailMessage

import pytest

from connections.protocols import ConnectorError
from connections.services import test_connection as run_connection_test
from tests.servers.common import free_port
from tests.servers.smtp_sink import start_smtp_sink


def make_message(subject, to=("ops@example.com", "finance@example.com"), attachment=b""):
    message = EmailMessage()
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content("The nightly extract is attached.\nGrüße\n")
    if attachment:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                               filename="sales_2026-01-31.csv.gpg")
    return message


def test_message_with_attachment_arrives_intact(smtp_connection, smtp_sink):
    attachment = os.urandom(150_000)

    smtp_connection.connector().send(make_message("Nightly sales", attachment=attachment))

    [mail] = smtp_sink.with_subject("Nightly sales")
    assert mail.mail_from == "etl@example.com"
    assert sorted(mail.recipients) == ["finance@example.com", "ops@example.com"]
    assert mail.message["From"] == "etl@example.com"
    assert "Grüße" in mail.message.get_body().get_content()
    [part] = list(mail.message.iter_attachments())
    assert part.get_filename() == "sales_2026-01-31.csv.gpg"
    assert part.get_content() == attachment


def test_one_session_sends_several_messages_over_starttls(smtp_connection, smtp_sink):
    smtp_connection.options |= {"security": "starttls", "verify_tls": False}
    connector = smtp_connection.connector()

    with connector.open() as server:
        for number in range(3):
            connector.send(make_message(f"Batch {number}", to=["ops@example.com"]), server)

    for number in range(3):
        [mail] = smtp_sink.with_subject(f"Batch {number}")
        assert mail.recipients == ["ops@example.com"]


def test_implicit_tls(smtp_connection):
    sink = start_smtp_sink(implicit_tls=True)
    try:
        smtp_connection.port = sink.port
        smtp_connection.options |= {"security": "ssl", "verify_tls": False}

        smtp_connection.connector().send(make_message("Over SSL", to=["ops@example.com"]))

        [mail] = sink.with_subject("Over SSL")
        assert mail.recipients == ["ops@example.com"]
    finally:
        sink.stop()


def test_self_signed_certificate_is_refused_when_verifying(smtp_connection):
    smtp_connection.options |= {"security": "starttls", "verify_tls": True}

    with pytest.raises(ConnectorError) as error:
        smtp_connection.connector().test()

    assert error.value.step == "connect"
    assert error.value.message.startswith("The TLS certificate of 127.0.0.1 could not be verified")


def test_connection_test_sends_no_mail(smtp_connection, smtp_sink):
    before = len(smtp_sink.received)

    ok, message = run_connection_test(smtp_connection)

    assert ok, message
    assert message == f"Connected to 127.0.0.1:{smtp_sink.port}; the server accepts mail"
    assert len(smtp_sink.received) == before


def test_wrong_password_is_an_authentication_failure_without_the_password(smtp_connection):
    smtp_connection.secrets = {"password": "Wrong-Pa55word-77"}

    ok, message = run_connection_test(smtp_connection)

    assert not ok
    assert message == ("Authentication failed: The SMTP server rejected the login of user 'mailer': "
                       "5.7.8 Authentication credentials invalid")
    assert "Wrong-Pa55word-77" not in message


def test_sending_without_a_login_where_one_is_required(smtp_connection):
    smtp_connection.username = ""

    with pytest.raises(ConnectorError) as error:
        smtp_connection.connector().send(make_message("No login"))

    assert error.value.step == "authentication"
    assert error.value.message.endswith("requires a login: set the username and password")


def test_refused_recipients_are_named(smtp_connection, smtp_sink):
    smtp_sink.refused.update({"nobody@example.com", "gone@example.com"})

    with pytest.raises(ConnectorError) as error:
        smtp_connection.connector().send(make_message("Refused", to=["nobody@example.com", "gone@example.com"]))
    assert error.value.step == "mail"
    assert error.value.message == "The server refused every recipient: gone@example.com, nobody@example.com"

    with pytest.raises(ConnectorError) as error:
        smtp_connection.connector().send(make_message("Partly", to=["ops@example.com", "gone@example.com"]))
    assert error.value.message == "The message was sent, but the server refused: gone@example.com"
    assert smtp_sink.with_subject("Partly")[0].recipients == ["ops@example.com"]


def test_closed_port_is_refused(smtp_connection):
    smtp_connection.port = free_port()

    ok, message = run_connection_test(smtp_connection)

    assert not ok
    assert message == (f"Refused failed: Connection refused by 127.0.0.1:{smtp_connection.port}: "
                       "nothing is listening there")


def test_missing_sender_is_a_settings_error(smtp_connection):
    smtp_connection.options.pop("from_address")
    smtp_connection.username = ""

    with pytest.raises(ConnectorError, match="Set the sender") as error:
        smtp_connection.connector().send(make_message("No sender"))
    assert error.value.step == "settings"


def test_open_session_is_a_logged_in_smtp_client(smtp_connection):
    with smtp_connection.connector().open() as server:
        assert isinstance(server, smtplib.SMTP)
        assert server.noop()[0] == 250
