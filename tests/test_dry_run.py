"""Dry run: the page, the command and the API show everything a run would do, and nothing leaves the portal."""
import datetime
import json
import sqlite3
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from api.models import ApiToken
from runs import dry_run
from runs.models import DryRun, Run, RunFile
from tasks.models import Destination, Notification
from tests.fixtures.delivery import ORDERS_QUERY

pytestmark = pytest.mark.django_db

MARKS_ITS_FILE = """
import os, sys
with open(sys.argv[1], "a") as out:
    out.write(f"dry run seen by the script: {os.environ['ETL_DRY_RUN']}\\n")
"""


@pytest.fixture
def full_task(make_task, sqlite_orders, sftp_drop, local_folder, smtp_connection, ny_project, gpg_connection):
    sftp, sftp_folder = sftp_drop
    archive, archive_folder = local_folder("Archive")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders_{yesterday:%Y%m%d}.csv", zip_output=True,
                     zip_name="orders_{yesterday:%Y%m%d}", gpg_key=gpg_connection, test_mode=True,
                     test_email="qa@example.com", processing_location="inline", processing_script=MARKS_ITS_FILE)
    Destination.objects.create(task=task, connection=sftp, folder=sftp_folder.name + "/%Y",
                               ack_pattern="{name}.ack", ack_wait_minutes=15)
    Destination.objects.create(task=task, connection=archive, marker=Destination.Marker.PER_FILE)
    Notification.objects.create(task=task, event="success", smtp_connection=smtp_connection,
                                recipients="ana@example.com, bob@example.com")
    return task, sftp_folder, archive_folder


def test_the_page_shows_what_a_run_would_do_and_nothing_is_sent(full_task, owner, client_of, mailbox, gpg_keys,
                                                                 settings):
    task, sftp_folder, archive_folder = full_task
    client = client_of(owner)

    asked = client.post(f"/tasks/{task.pk}/dry-run/", {"date": "2024-03-15"})
    made = DryRun.objects.get()
    assert asked.status_code == 302 and asked["Location"] == f"/runs/dry-runs/{made.pk}/"
    waiting = client.get(f"/runs/dry-runs/{made.pk}/").content.decode()
    assert 'id="dry-run-waiting"' in waiting and 'hx-trigger="every 2s"' in waiting

    dry_run.execute(made.pk)  # what the worker does with the job the page queued

    page = client.get(f"/runs/dry-runs/{made.pk}/").content.decode()
    assert "Would deliver" in page
    assert 'id="dry-run-rows">3<' in page
    assert "dry run seen by the script: 1" in page  # the processing script ran, in its sandbox
    assert "orders_20240314.zip" in page
    assert f"{sftp_folder}/2024/orders_20240314.zip" in page
    assert "then waits up to 15 minutes for orders_20240314.zip.ack" in page
    assert "then a .done marker beside each file" in page
    assert "test mode: every email goes to qa@example.com" in page and "ana@example.com, bob@example.com" in page
    assert gpg_keys.fingerprint in page
    report = DryRun.objects.get().report
    assert [output["name"] for output in report["outputs"]] == ["orders_20240314.zip"]
    assert report["outputs"][0]["size"] > 0

    # Nothing left the portal, nothing was recorded, no scratch files stayed behind.
    assert list(sftp_folder.iterdir()) == [] and list(archive_folder.iterdir()) == []
    assert mailbox.received == []
    assert not Run.objects.exists() and not RunFile.objects.exists()
    assert not any((settings.ETL_DATA_DIR / "dry-runs").iterdir())


def test_a_query_that_writes_is_stopped_by_the_read_only_session(make_task, sqlite_orders, pg_connection, owner,
                                                                ny_project):
    task = make_task(sqlite_orders, "DELETE FROM orders WHERE id = 1 RETURNING id", file_name="gone.csv")
    report = dry_run.build(task, datetime.datetime(2024, 3, 15, tzinfo=datetime.timezone.utc))
    assert report["outcome"].startswith("A run would fail: ")
    assert "readonly database" in report["error"]
    assert sqlite3.connect(sqlite_orders.path).execute("SELECT count(*) FROM orders").fetchone() == (3,)

    pg_task = make_task(pg_connection, "CREATE TABLE written_by_a_dry_run AS SELECT 1 AS x", name="Writer",
                        file_name="x.csv")
    report = dry_run.build(pg_task, datetime.datetime(2024, 3, 15, tzinfo=datetime.timezone.utc))
    assert "cannot execute CREATE TABLE AS in a read-only transaction" in report["error"]


def test_an_ssh_command_is_shown_not_run(make_task, sftp_connection, ny_project):
    task = make_task(sftp_connection, "", source_kind="ssh", command="touch /tmp/never", file_name="x.csv")
    report = dry_run.build(task, datetime.datetime(2024, 3, 15, tzinfo=datetime.timezone.utc))
    assert report["source"].startswith("Not run: an SSH command can change the server it runs on")


def test_who_may_ask_and_who_may_see(full_task, owner, member, outsider, client_of):
    task, _, _ = full_task
    assert client_of(member).post(f"/tasks/{task.pk}/dry-run/").status_code == 403
    client_of(owner).post(f"/tasks/{task.pk}/dry-run/")
    made = DryRun.objects.get()
    assert client_of(member).get(f"/runs/dry-runs/{made.pk}/").status_code == 200  # a viewer may look
    assert client_of(outsider).get(f"/runs/dry-runs/{made.pk}/").status_code == 404


def test_the_command_prints_the_report(full_task, owner, mailbox):
    task, sftp_folder, _ = full_task
    out = StringIO()
    call_command("run_task", task.pk, "--dry-run", "--as-of", "2024-03-15", "--user", owner.username, stdout=out)
    report = json.loads(out.getvalue())
    assert report["rows"] == 3 and report["outputs"][0]["name"] == "orders_20240314.zip"
    assert report["destinations"][0]["files"][0]["path"] == f"{sftp_folder}/2024/orders_20240314.zip"
    assert list(sftp_folder.iterdir()) == [] and mailbox.received == [] and not Run.objects.exists()


def test_the_api_asks_for_a_dry_run_and_reads_its_report(full_task, owner):
    task, _, _ = full_task
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(owner, 'dry')[1]}")
    asked = api.post(f"/api/v1/tasks/{task.pk}/dry-run/", {"as_of": "2024-03-15T06:00:00Z"}, format="json")
    assert asked.status_code == 202 and asked.json()["status"] == "queued"
    dry_run.execute(asked.json()["id"])
    answer = api.get(f"/api/v1/dry-runs/{asked.json()['id']}/").json()
    assert answer["status"] == "done" and answer["report"]["rows"] == 3
