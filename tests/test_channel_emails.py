"""Emails as channels (runs/notifications.py), at the real SMTP sink: every email links back to its run
(ETL_BASE_URL), a success email can attach the log, an email can be held back when the output is empty, and late
alerts go to the task's "when late or missed" emails through the outbox."""
import datetime as dt

import pytest

from alerts import outbox
from alerts.deadlines import Checker
from alerts.models import Delivery
from runs.models import Run
from tasks.models import Notification
from tests import factories
from tests.fixtures.delivery import EMPTY_QUERY, ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db
BASE = "https://etl.example.com"


@pytest.fixture(autouse=True)
def base_url(settings):
    settings.ETL_BASE_URL = BASE


def notification(task, smtp, event="success", **fields):
    fields.setdefault("recipients", "ana@example.com")
    return Notification.objects.create(task=task, event=event, smtp_connection=smtp, **fields)


def plain_text(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_success_email_links_to_the_run_and_attaches_its_log(make_task, sqlite_orders, smtp_connection, mailbox,
                                                              run_at):
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    notification(task, smtp_connection, attach_log=True)

    run = run_at(task)

    [mail] = mailbox.received
    assert f"Open: {BASE}/runs/{run.pk}/" in plain_text(mail.message)
    [log] = list(mail.message.iter_attachments())
    assert log.get_filename() == f"run-{run.pk}.log" and log.get_content_type() == "text/plain"
    content = log.get_content()
    assert "Finished successfully" in content and "Started on" in content


def test_an_email_for_empty_output_is_held_back_when_asked_and_the_others_still_go(
        make_task, sqlite_orders, smtp_connection, mailbox, run_at):
    task = make_task(sqlite_orders, EMPTY_QUERY, file_name="orders.csv")
    notification(task, smtp_connection, recipients="quiet@example.com", skip_when_empty=True)
    notification(task, smtp_connection, recipients="always@example.com")

    run = run_at(task)

    assert run.status == "succeeded" and run.rows == 0
    assert [mail.recipients for mail in mailbox.received] == [["always@example.com"]]
    assert "The success email to quiet@example.com was not sent: the output is empty" in log_text(run)

    mailbox.received.clear()
    task.query = ORDERS_QUERY
    task.save()
    run_at(task)
    assert sorted(mail.recipients[0] for mail in mailbox.received) == ["always@example.com", "quiet@example.com"]


def test_a_late_alert_is_emailed_by_the_outbox_with_a_link_and_only_once(add_task, smtp_connection, mailbox, clock):
    task = add_task("Orders", max_duration=dt.timedelta(minutes=5))
    notification(task, smtp_connection, "late", recipients="oncall@example.com, 5551234567@sms.example")
    notification(task, smtp_connection, "error", recipients="errors@example.com")
    run = factories.run(task, trigger=Run.Trigger.SCHEDULE, scheduled_for=clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now)
    Checker().check(now=clock.advance(minutes=6))
    Checker().check(now=clock.advance(minutes=1))

    assert mailbox.received == [], "the checker only queues"
    assert outbox.send_due() == 1 and outbox.send_due() == 0
    mails = {tuple(mail.recipients): mail.message for mail in mailbox.received}
    assert set(mails) == {("oncall@example.com",), ("5551234567@sms.example",)}
    email = mails[("oncall@example.com",)]
    assert email["Subject"] == "Orders: late"
    body = plain_text(email)
    assert "Late: still running after 5 min (its maximum duration)" in body and f"Open: {BASE}/runs/{run.pk}/" in body
    assert mails[("5551234567@sms.example",)].get_content().strip() == (
        f"Orders: Late: still running after 5 min (its maximum duration) {BASE}/runs/{run.pk}/")
    assert Delivery.objects.get().status == "sent"
    assert "The late message to oncall@example.com, 5551234567@sms.example was sent" in log_text(run)


def test_a_late_email_that_cannot_be_sent_is_retried_and_recorded(add_task, organization, closed_port, clock):
    smtp = factories.connection(organization, "smtp", "Dead mail", host="127.0.0.1", port=closed_port)
    task = add_task("Orders", max_duration=dt.timedelta(minutes=5))
    notification(task, smtp, "late")
    run = factories.run(task, trigger=Run.Trigger.SCHEDULE, scheduled_for=clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now)
    Checker().check(now=clock.advance(minutes=6))
    outbox.send_due()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.tries.get().error and delivery.tries.get().status_code is None
    run.refresh_from_db()
    assert run.status == "running"
