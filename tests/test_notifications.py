"""Notifications, checked at a real SMTP server: who got what, with which attachments, in test mode too."""
import datetime
import hashlib
import io
import zipfile

import pytest

from connections.models import Connection
from etl_portal.links import run_url
from runs.models import RunFile
from tasks.models import Condition, Notification
from tests.fixtures.delivery import ORDERS_QUERY, log_text
from tests.test_packaging import ORDERS_CSV

pytestmark = pytest.mark.django_db

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


@pytest.fixture
def orders_task(make_task, sqlite_orders, local_folder, ny_project):
    connection, _ = local_folder()
    return make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv")


def notification(task, smtp, event="success", **fields):
    fields.setdefault("recipients", "ana@example.com")
    return Notification.objects.create(task=task, event=event, smtp_connection=smtp, **fields)


def attachments(message):
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def plain_text(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def test_success_email_carries_the_encrypted_zip_as_delivered(orders_task, smtp_connection, mailbox, gpg_connection,
                                                             gpg_keys, run_at, tmp_path):
    orders_task.gpg_key, orders_task.zip_output, orders_task.write_md5_file = gpg_connection, True, True
    orders_task.zip_name = "orders_{yesterday:%Y%m%d}"
    orders_task.save()
    notification(orders_task, smtp_connection, recipients="ana@example.com, bob@example.com\n",
                 cc="boss@example.com", bcc="audit@example.com", include_output="attach",
                 subject="Orders of {yesterday:%d.%m.%Y} delivered")

    run = run_at(orders_task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    [mail] = mailbox.received
    assert sorted(mail.recipients) == ["ana@example.com", "audit@example.com", "bob@example.com", "boss@example.com"]
    message = mail.message
    assert (message["Subject"], message["From"]) == ("Orders of 14.03.2024 delivered", "etl@example.com")
    assert (message["To"], message["Cc"], message["Bcc"]) == ("ana@example.com, bob@example.com", "boss@example.com",
                                                               None)
    files = attachments(message)
    assert list(files) == ["orders_20240314.zip"]  # the .md5 file is delivered, not mailed
    record = RunFile.objects.get(run=run, name="orders_20240314.zip")
    assert hashlib.md5(files["orders_20240314.zip"]).hexdigest() == record.md5
    with zipfile.ZipFile(io.BytesIO(files["orders_20240314.zip"])) as archive:
        (tmp_path / "orders.csv.gpg").write_bytes(archive.read("orders.csv.gpg"))
    assert gpg_keys.decrypt(tmp_path / "orders.csv.gpg") == ORDERS_CSV
    assert f"File: orders_20240314.zip ({record.size:,} bytes, md5 {record.md5})" in plain_text(message)
    assert "Sent the success email to ana@example.com, bob@example.com; cc boss@example.com; 1 bcc" in log_text(run)


def test_error_email_carries_the_error_and_the_log(make_task, sqlite_orders, smtp_connection, mailbox, ny_project,
                                                  run_at):
    task = make_task(sqlite_orders, "SELECT * FROM missing_table", file_name="x.csv")
    notification(task, smtp_connection, "success", recipients="happy@example.com")
    notification(task, smtp_connection, "error", recipients="ops@example.com", message="Please look at {task}.")

    run = run_at(task, MARCH_15)

    assert run.status == "failed"
    [mail] = mailbox.received
    assert mail.recipients == ["ops@example.com"]
    assert mail.message["Subject"] == "Extract: FAILED"
    body = plain_text(mail.message)
    assert body.startswith("Please look at Extract.")
    assert "Error: SQLite error: no such table: missing_table" in body
    assert "Log:" in body and "Started on" in body and "no such table: missing_table" in body.split("Log:")[1]
    assert attachments(mail.message) == {}


def test_warning_email_says_why_nothing_was_delivered(orders_task, smtp_connection, mailbox, run_at):
    Condition.objects.create(task=orders_task, kind="min_rows", value="10")
    notification(orders_task, smtp_connection, "warning", recipients="ana@example.com", include_output="attach")

    run = run_at(orders_task, MARCH_15)

    assert run.status == "warning"
    [mail] = mailbox.received
    assert mail.message["Subject"] == "Extract: finished with a warning"
    assert ("Warning: Not delivered: Condition 1 (the output has at least 10 rows) does not hold: 3 rows"
            in plain_text(mail.message))


def test_an_attachment_over_the_limit_is_refused_with_a_note(orders_task, smtp_connection, mailbox, run_at):
    notification(orders_task, smtp_connection, include_output="attach", max_attachment_bytes=100)

    run = run_at(orders_task, MARCH_15)

    [mail] = mailbox.received
    assert attachments(mail.message) == {}
    size = RunFile.objects.get(run=run).size
    note = f"orders.csv ({size} bytes) was not attached: the attachments would exceed the 100 bytes limit"
    assert f"Note: {note}" in plain_text(mail.message)
    assert run.log_lines.filter(level="warning", message=note).exists()


def test_a_small_csv_is_embedded_as_a_table(orders_task, smtp_connection, mailbox, run_at):
    notification(orders_task, smtp_connection, include_output="embed")

    run_at(orders_task, MARCH_15)

    [mail] = mailbox.received
    html = mail.message.get_body(preferencelist=("html",)).get_content()
    assert "<tr><th>id</th><th>day</th><th>customer</th><th>amount</th><th>note</th></tr>" in html
    assert "<td>Smith, John</td>" in html and "<td>She said &quot;hi&quot;</td>" in html
    assert "<td>line one<br>line two</td>" in html
    assert "for 2024-03-15 06:00 EDT" in plain_text(mail.message)  # the run's time in the project's zone
    assert attachments(mail.message) == {}


def test_phone_gateways_get_a_short_plain_text_message(orders_task, smtp_connection, mailbox, run_at):
    notification(orders_task, smtp_connection, include_output="attach",
                 recipients="5551234567@vtext.example, +447700900123@sms.example, ana@example.com")

    run = run_at(orders_task, MARCH_15)

    mails = {tuple(mail.recipients): mail.message for mail in mailbox.received}
    assert set(mails) == {("ana@example.com",), ("5551234567@vtext.example", "+447700900123@sms.example")}
    assert list(attachments(mails[("ana@example.com",)])) == ["orders.csv"]
    sms = mails[("5551234567@vtext.example", "+447700900123@sms.example")]
    assert not sms.is_multipart() and sms.get_content_type() == "text/plain"
    assert sms.get_content().strip() == f"Extract: succeeded (run {run.pk}) {run_url(run.pk)}"
    assert ("Sent the success email to ana@example.com; Sent a text message to 5551234567@vtext.example, "
            "+447700900123@sms.example") in log_text(run)


def test_test_mode_sends_one_email_per_recipient_to_the_test_address(orders_task, smtp_connection, mailbox, run_at):
    orders_task.test_mode, orders_task.test_email = True, "qa@example.com"
    orders_task.save()
    notification(orders_task, smtp_connection, recipients="ana@example.com, bob@example.com, 5551234567@vtext.example",
                 cc="boss@example.com", bcc="audit@example.com", subject="Orders {today}", include_output="attach")

    run = run_at(orders_task, MARCH_15)

    assert all(mail.recipients == ["qa@example.com"] for mail in mailbox.received)
    subjects = sorted(mail.message["Subject"] for mail in mailbox.received)
    assert subjects == ["[5551234567@vtext.example] Extract: Succeeded", "[ana@example.com] Orders 2024-03-15",
                        "[bob@example.com] Orders 2024-03-15"]
    assert all(mail.message["Cc"] is None for mail in mailbox.received)
    ana = next(mail.message for mail in mailbox.received if "ana@" in mail.message["Subject"])
    assert list(attachments(ana)) == ["orders.csv"]
    assert ("Test mode: sent 3 success email(s) to qa@example.com instead of ana@example.com, bob@example.com, "
            "5551234567@vtext.example (CC and BCC dropped)") in log_text(run)


def test_a_staging_install_sends_everything_to_its_test_address(orders_task, smtp_connection, mailbox, run_at,
                                                               settings):
    settings.ETL_EMAIL_TEST_ADDRESS = "staging@example.com"
    notification(orders_task, smtp_connection, recipients="ana@example.com", cc="boss@example.com")

    run_at(orders_task, MARCH_15)

    [mail] = mailbox.received
    assert mail.recipients == ["staging@example.com"]
    assert mail.message["Subject"] == "[ana@example.com] Extract: succeeded"


def test_a_mail_failure_is_logged_and_never_changes_the_outcome(orders_task, organization, closed_port, run_at):
    broken = Connection.objects.create(organization=organization, name="Old relay", kind="smtp", host="127.0.0.1",
                                       port=closed_port, username="mailer", secrets={"password": "Relay-Pa55"},
                                       options={"from_address": "etl@example.com", "timeout": 3})
    notification(orders_task, broken)

    run = run_at(orders_task, MARCH_15)

    assert run.status == "succeeded"
    line = run.log_lines.filter(level="warning").get()
    assert line.message.startswith("The success email could not be sent: ")
    assert "Relay-Pa55" not in log_text(run)
