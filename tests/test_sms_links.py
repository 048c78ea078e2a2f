"""Text messages through email-to-SMS gateways link back to their run (runs/notifications.py `sms_text`), checked
at the real SMTP sink: the message a gateway receives ends with the run's whole URL under ETL_BASE_URL and stays
within 160 characters; a long text (a long task name) is shortened with an ellipsis to make room, never the link;
a link that would not fit even alone is left out; secrets in the text are still masked, the link is whole."""
import datetime

import pytest

from runs.notifications import SMS_LENGTH
from tasks.models import Notification
from tests.fixtures.delivery import ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db
BASE = "https://etl.example.com"
PHONE = "5551234567@sms.example"
MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


@pytest.fixture
def make_orders_task(make_task, sqlite_orders, local_folder, ny_project, settings):
    settings.ETL_BASE_URL = BASE

    def make(name="Extract"):
        connection, _ = local_folder()
        return make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], name=name, file_name="orders.csv")

    return make


def text_message(task, smtp, mailbox, run_at, **fields):
    """Run the task with a success notification to a phone gateway; (the run, the text the gateway got)."""
    Notification.objects.create(task=task, event="success", smtp_connection=smtp, recipients=PHONE, **fields)
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded", log_text(run)
    [mail] = mailbox.received
    assert mail.recipients == [PHONE]
    return run, mail.message.get_content().strip()


def test_a_text_message_ends_with_its_runs_link(make_orders_task, smtp_connection, mailbox, run_at):
    run, text = text_message(make_orders_task(), smtp_connection, mailbox, run_at)

    assert text == f"Extract: succeeded (run {run.pk}) {BASE}/runs/{run.pk}/"
    assert f"Sent a text message to {PHONE}" in log_text(run)


def test_a_long_task_name_is_shortened_and_the_link_kept_whole(make_orders_task, smtp_connection, mailbox,
                                                               run_at):
    name = "Quarterly reconciliation of every vendor's settled and unsettled orders across all regional " \
           "warehouses and every distribution centre, with returns, credits and late adjustments included"
    assert len(name) > SMS_LENGTH
    run, text = text_message(make_orders_task(name), smtp_connection, mailbox, run_at)

    link = f"{BASE}/runs/{run.pk}/"
    assert len(text) <= SMS_LENGTH
    assert text.endswith(f"… {link}"), text
    shortened = text[:-len(link) - 2]
    assert name.startswith(shortened) and len(shortened) > 100, "as much of the text as fits"
    assert len(text) >= SMS_LENGTH - 1, "the room is used, not wasted"


def test_secrets_are_masked_in_the_text_and_the_link_is_whole(make_orders_task, smtp_connection, mailbox, run_at,
                                                              smtp_sink):
    run, text = text_message(make_orders_task(), smtp_connection, mailbox, run_at,
                             message=f"Orders sent; relay password {smtp_sink.password} rotated")

    assert smtp_sink.password not in text
    assert text == f"Orders sent; relay password ******** rotated {BASE}/runs/{run.pk}/"


def test_a_link_that_would_not_fit_even_alone_is_left_out(make_orders_task, smtp_connection, mailbox, run_at,
                                                          settings):
    settings.ETL_BASE_URL = "https://" + "portal." * 25 + "example.com"  # over 160 characters with the path
    run, text = text_message(make_orders_task(), smtp_connection, mailbox, run_at)

    assert text == f"Extract: succeeded (run {run.pk})"
