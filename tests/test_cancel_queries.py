"""Cancelling a run stops its query on the database itself, through the source connector."""
import threading
import time

import pytest

from runs import execution, orchestration
from runs.models import Run
from tasks.models import Task
from tests.fixtures.scheduling import wait_for
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_background(run):
    thread = threading.Thread(target=execution.execute_run, args=(run.pk,))
    thread.start()
    return thread


def test_cancelling_a_postgres_extract_cancels_the_statement_on_the_server(project, pg_connection):
    task = Task.objects.create(project=project, name="Slow", source_connection=pg_connection,
                               query="SELECT pg_sleep(30)")
    run = Run.objects.create(task=task)
    worker = run_in_background(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).log_lines.filter(message__startswith="Running query").exists())
    time.sleep(1)  # the statement is on the server now
    started = time.monotonic()
    orchestration.cancel_run(Run.objects.get(pk=run.pk))
    worker.join(timeout=15)
    run.refresh_from_db()
    assert run.status == "cancelled", run.error
    assert time.monotonic() - started < 5  # pg_sleep(30) was cut short on the server


def test_cancelling_a_sqlite_extract_interrupts_it(project, organization, tmp_path):
    source = factories.sqlite_source(organization, tmp_path / "slow.sqlite3", name="Local")
    task = Task.objects.create(project=project, name="Endless", source_connection=source, query=(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"))
    run = Run.objects.create(task=task)
    worker = run_in_background(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).log_lines.filter(message__startswith="Running query").exists())
    started = time.monotonic()
    orchestration.cancel_run(Run.objects.get(pk=run.pk))
    worker.join(timeout=15)
    run.refresh_from_db()
    assert run.status == "cancelled" and time.monotonic() - started < 5


def test_cancelling_an_odbc_extract_stops_it(project, odbc_pg_connection):
    task = Task.objects.create(project=project, name="Slow ODBC", source_connection=odbc_pg_connection,
                               query="SELECT pg_sleep(30)")
    run = Run.objects.create(task=task)
    worker = run_in_background(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).log_lines.filter(message__startswith="Running query").exists())
    time.sleep(1)
    started = time.monotonic()
    orchestration.cancel_run(Run.objects.get(pk=run.pk))
    worker.join(timeout=15)
    run.refresh_from_db()
    assert run.status == "cancelled", run.error
    assert time.monotonic() - started < 5
