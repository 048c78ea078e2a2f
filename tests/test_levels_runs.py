"""A real run takes its settings from the levels: a SQLite extract written with the organization's CSV options to
the project's default destination folder, the failure mailbox of the organization at a real SMTP sink, the
project's retries; a change at a level reaches the task at its next run."""
import datetime

import pytest

from runs.models import Run
from tasks import inheritance
from tests.fixtures.delivery import ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


def set_level(holder, organization, **values):
    inheritance.save_level_settings(holder, inheritance.clean_level_settings(
        {**(holder.settings or {}), **values}, organization))


def test_a_run_writes_and_delivers_with_the_inherited_settings(make_task, sqlite_orders, local_folder, ny_project,
                                                               organization, run_at):
    drop, folder = local_folder()
    set_level(organization, organization, csv_delimiter=";", csv_quoting="all", line_terminator="crlf",
              destination_connection=drop.pk, destination_folder="org")
    set_level(ny_project, organization, destination_folder="vendor/{yesterday:%Y%m%d}")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")  # no destinations, no own options

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    delivered = (folder / "vendor" / "20240314" / "orders.csv").read_bytes()
    assert delivered.startswith(b'"id";"day";"customer";"amount";"note"\r\n"1";"2024-03-14";"Smith, John"')
    assert not (folder / "org").exists()  # the project's folder is nearer than the organization's

    # A change at the organization reaches the task at its next run; the task's own value beats it.
    set_level(organization, organization, csv_delimiter="|")
    task.csv_quoting = "minimal"
    task.save()
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded", log_text(run)
    assert (folder / "vendor" / "20240314" / "orders.csv").read_bytes().startswith(
        b"id|day|customer|amount|note\r\n1|2024-03-14|Smith, John|12.50|")


def test_a_failure_goes_to_the_organizations_mailbox_unless_the_task_says_none(
        make_task, sqlite_orders, smtp_connection, mailbox, ny_project, organization, run_at):
    set_level(organization, organization, error_recipients="ops@acme.example, oncall@acme.example",
              error_smtp_connection=smtp_connection.pk, success_recipients="team@acme.example")
    task = make_task(sqlite_orders, "SELECT * FROM missing_table", file_name="x.csv")

    run = run_at(task, MARCH_15)

    assert run.status == "failed"
    [mail] = mailbox.received
    assert sorted(mail.recipients) == ["oncall@acme.example", "ops@acme.example"]
    assert mail.message["Subject"] == "Extract: FAILED"
    assert "Sent the error email to ops@acme.example, oncall@acme.example" in log_text(run)

    mailbox.received.clear()
    task.error_recipients = "none"  # the task's own value: no failure email
    task.save()
    run = run_at(task, MARCH_15)
    assert run.status == "failed" and mailbox.received == []


def test_test_mode_set_on_the_project_redirects_the_inherited_mailbox(make_task, sqlite_orders, smtp_connection,
                                                                      mailbox, ny_project, organization, run_at):
    set_level(organization, organization, success_recipients="team@acme.example",
              success_smtp_connection=smtp_connection.pk)
    set_level(ny_project, organization, test_mode=True, test_email="qa@acme.example")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    [mail] = mailbox.received
    assert mail.recipients == ["qa@acme.example"]
    assert mail.message["Subject"].startswith("[team@acme.example]")


def test_a_failed_run_is_retried_as_the_project_says(make_task, sqlite_orders, ny_project, organization, run_at):
    set_level(organization, organization, retries=5, retry_delay_seconds=0)
    set_level(ny_project, organization, retries=1)
    task = make_task(sqlite_orders, "SELECT * FROM missing_table", file_name="x.csv")

    first = run_at(task, MARCH_15)

    assert first.status == "failed"
    retry = Run.objects.get(retry_of=first)
    assert (retry.attempt, retry.trigger) == (2, "retry")
    assert "Retry 1 of 1 after run" in "\n".join(retry.log_lines.values_list("message", flat=True))


def test_retention_set_on_the_organization_purges_the_files_of_tasks_that_inherit_it(
        make_task, sqlite_orders, ny_project, organization, run_at, settings):
    from runs.delivery import purge_expired_files
    from runs.models import RunFile

    set_level(organization, organization, retention_days=1)
    inheriting = make_task(sqlite_orders, ORDERS_QUERY, file_name="a.csv", name="Inherits")
    keeping = make_task(sqlite_orders, ORDERS_QUERY, file_name="b.csv", name="Keeps", retention_days=0)  # forever
    files = [RunFile.objects.get(run=run_at(task, MARCH_15)) for task in (inheriting, keeping)]

    later = max(record.created_at for record in files) + datetime.timedelta(days=2)
    assert purge_expired_files(now=later) == 1
    purged = {record.run.task.name: record.purged_at is not None
              for record in RunFile.objects.select_related("run__task")}
    assert purged == {"Inherits": True, "Keeps": False}


def test_a_connection_a_level_names_is_not_deleted(organization, org_admin, smtp_connection, project, client):
    set_level(project, organization, error_smtp_connection=smtp_connection.pk)
    client.force_login(org_admin)
    response = client.post(f"/connections/{smtp_connection.pk}/delete/")
    assert response.status_code == 409
    assert "the shared settings of project" in response.content.decode()
    assert type(smtp_connection).objects.filter(pk=smtp_connection.pk).exists()
    inheritance.save_level_settings(project, {})
    assert client.post(f"/connections/{smtp_connection.pk}/delete/").status_code == 302
