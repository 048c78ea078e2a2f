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


def test_cancelling_a_parquet_extract_mid_stream_stops_copy_and_its_writer_thread(project, pg_connection):
    """Parquet from PostgreSQL streams COPY into a writer thread (runs/parquet.py): both stop, nothing is left."""
    task = Task.objects.create(project=project, name="Big Parquet", source_connection=pg_connection,
                               file_format="parquet",
                               query="SELECT g, md5(g::text) FROM generate_series(1, 50000000) g")
    run = Run.objects.create(task=task)
    worker = run_in_background(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).log_lines.filter(message__startswith="Running query").exists())
    wait_for(lambda: any(thread.name == "parquet-writer" for thread in threading.enumerate()))
    orchestration.cancel_run(Run.objects.get(pk=run.pk))
    worker.join(timeout=30)  # 50 million rows take minutes: only a stopped COPY ends it in time
    run.refresh_from_db()
    assert run.status == "cancelled", run.error
    assert not any(thread.name == "parquet-writer" for thread in threading.enumerate())
    assert not run.files.exists()
