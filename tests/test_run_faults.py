"""Runs that survive faults: a worker whose lease renewals fail is fenced off and never delivers twice; a retry
is created once per failed attempt; a fenced worker's writes change nothing.

The cluster test uses a real `manage.py qcluster` (tests/fixtures/scheduling.py) whose lease renewals for first
attempts are made to fail (ETL_TEST_FAIL_LEASE_RENEWAL, a test-only setting), as when only the watcher's
connection is cut. Deliveries are counted at the destination: one folder per run.
"""
import datetime as dt
import subprocess
import sys
import time

import pytest
from django.utils import timezone
from django_q.models import Schedule

from connections.models import Connection
from projects import scheduling
from runs import orchestration, queueing
from runs.models import Run
from tasks.models import Destination, Task
from tests.fixtures.scheduling import MANAGE, QCluster, cluster_environment, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retry_is_created_once_per_failed_attempt(add_task):
    task = add_task("Flaky", retries=3)
    run = Run.objects.create(task=task, status=Run.Status.FAILED, error="boom")
    first = orchestration.schedule_retry(run)
    again = orchestration.schedule_retry(run)
    assert first is not None and again.pk == first.pk
    assert list(task.runs.filter(trigger="retry").values_list("attempt", "retry_of")) == [(2, run.pk)]


def test_a_fenced_worker_cannot_write_the_outcome(add_task):
    task = add_task("Fenced")
    run = Run.objects.create(task=task)
    assert Run.objects.claim(run.pk, "host:1:1")
    # The reaper failed it and another worker holds the retry; the old worker's late writes change nothing.
    Run.objects.filter(pk=run.pk).update(worker="host:2:2")
    assert not run.mark_succeeded("Finished successfully", owner="host:1:1")
    assert not run.mark_failed("late", owner="host:1:1")
    run.refresh_from_db()
    assert run.status == "running" and not run.log_lines.filter(message="late").exists()


@pytest.fixture
def fenced_cluster(django_db_setup, tmp_path_factory):
    from django.db import connections

    connections.close_all()
    log_path = tmp_path_factory.mktemp("qcluster-fenced") / "qcluster.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(MANAGE), "qcluster"], stdout=log, stderr=subprocess.STDOUT,
                                   env=cluster_environment(ETL_LOCAL_ROOTS=tmp_path_factory.getbasetemp(),
                                                           ETL_TEST_FAIL_LEASE_RENEWAL="1"),
                                   cwd=MANAGE.parent)
    cluster = QCluster(process, log_path)
    wait_for(lambda: "running." in cluster.log() or process.poll() is not None, timeout=30, message="qcluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def counted_source(pg_connection):
    """A PostgreSQL source whose query `SELECT count_me()` takes ~3 s and counts its executions outside the app:
    in a sequence, which a cancelled statement's rollback does not undo."""
    import psycopg

    from tests.servers import postgres as pg

    host, port, user = pg.dsn_parts()
    dsn = dict(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True)
    with psycopg.connect(**dsn) as conn:
        conn.execute("DROP SEQUENCE IF EXISTS executions CASCADE")
        conn.execute("CREATE SEQUENCE executions")
        conn.execute("""CREATE OR REPLACE FUNCTION count_me(seconds float8 DEFAULT 3) RETURNS bigint
                        LANGUAGE plpgsql VOLATILE AS $$
                        DECLARE n bigint; BEGIN n := nextval('executions'); PERFORM pg_sleep(seconds);
                        RETURN n; END $$""")

    def executions():
        with psycopg.connect(**dsn) as conn:
            last, called = conn.execute("SELECT last_value, is_called FROM executions").fetchone()
        return last if called else 0

    pg_connection.executions = executions
    return pg_connection


def delivered_runs(outbox):
    """The run ids that delivered a file: one folder per run."""
    return sorted(int(path.relative_to(outbox).parts[0]) for path in outbox.rglob("*") if path.is_file())


def test_a_worker_that_loses_only_its_lease_connection_delivers_once(fenced_cluster, organization, project,
                                                                    counted_source, tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    folder = Connection.objects.create(organization=organization, name="Outbox", kind="local", path=str(outbox))
    task = Task.objects.create(project=project, name="Lease lost", source_connection=counted_source,
                               query="SELECT count_me() AS n", retries=1, retry_delay_seconds=0)
    Destination.objects.create(task=task, connection=folder, folder="{run_id}")
    scheduling.ensure_portal_schedules()
    run = queueing.enqueue_run(task)
    wait_for(lambda: Run.objects.filter(pk=run.pk, status="running").exists(), timeout=15, message="the start")
    # Renewals of attempt 1 fail: its worker gives the lease up within 1.5 s (lease 2 s) and stops without
    # delivering; the reaper (brought forward) fails the run and retries it once; the retry renews and delivers.
    Schedule.objects.filter(name=scheduling.REAPER_NAME).update(next_run=timezone.now() + dt.timedelta(seconds=3))
    wait_for(lambda: task.runs.filter(status__in=Run.FINISHED).count() == 2, timeout=40,
             message=lambda: f"both attempts to end\n{fenced_cluster.log()[-3000:]}")
    time.sleep(3)  # anything a fenced worker would still do happens now
    runs = list(task.runs.order_by("id"))
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "succeeded")]
    assert runs[0].error.startswith("Interrupted") and runs[1].retry_of_id == runs[0].pk
    assert counted_source.executions() == 2  # one query per attempt, counted by the source database
    assert delivered_runs(outbox) == [runs[1].pk]  # one delivery, from the attempt that held its lease
    assert not runs[0].files.exists() and runs[1].files.count() == 1
    assert not task.runs.exclude(status__in=Run.FINISHED).exists()
    log = fenced_cluster.log()
    assert f"Run {runs[0].pk}: lease lost" in log and f"Run {runs[1].pk}: lease lost" not in log
