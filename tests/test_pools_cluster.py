"""Limits held at the claim, across two real clusters (two `manage.py qcluster`, two workers each, and the
housekeeping loop) on the session's database: runs of many tasks on one source capped at two never run more than
two at once, both clusters take some, and every run ends; a backfill's dates start in date order, at most its
dates-at-once in flight."""
import datetime as dt
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection as db_connection, connections

from runs import backfill, pools, queueing
from runs.models import Run
from tests import factories
from tests.fixtures.scheduling import MANAGE, QCluster, cluster_environment, start_housekeeping, wait_for
from tests.servers.common import stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]  # starts its own processes
CAP, RUNS = 2, 10
# About a second of SQLite CPU on this machine: long enough for runs to overlap, short enough for the test.
BUSY_QUERY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
              "SELECT count(*) AS n FROM c")


def start_cluster(log_path, roots):
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(MANAGE), "qcluster"], stdout=log, stderr=subprocess.STDOUT,
                                   # One worker each: two runs at once then need both clusters, so the cap is
                                   # held across clusters, not inside one.
                                   env=cluster_environment(ETL_LOCAL_ROOTS=roots, ETL_WORKERS=1), cwd=MANAGE.parent)
    cluster = QCluster(process, log_path)
    wait_for(lambda: "running." in cluster.log() or process.poll() is not None, timeout=60, message="a cluster")
    assert process.poll() is None, cluster.log()[-2000:]
    return cluster


class Sampler(threading.Thread):
    """Counts, every few milliseconds from its own database connection, the running runs using a connection."""

    def __init__(self, connection_id):
        super().__init__(daemon=True)
        self.connection_id, self.highest, self.samples = connection_id, 0, 0
        self.done = threading.Event()

    def run(self):
        try:
            while not self.done.is_set():
                self.highest = max(self.highest, pools.running_using(self.connection_id))
                self.samples += 1
                time.sleep(0.01)
        finally:
            db_connection.close()


def most_at_once(runs):
    """The most runs whose [started, finished] spans overlap, from the times the claim and the finish wrote."""
    edges = sorted([(run.started_at, 1) for run in runs] + [(run.finished_at, -1) for run in runs],
                   key=lambda edge: (edge[0], edge[1]))
    current = highest = 0
    for _, step in edges:
        current += step
        highest = max(highest, current)
    return highest


@pytest.fixture(scope="module")
def clusters(django_db_setup, tmp_path_factory):
    """Two clusters and the housekeeping loop for this module's tests (never shared wider)."""
    connections.close_all()
    folder = tmp_path_factory.mktemp("two-clusters")
    started, housekeeping = [], None
    try:
        for name in ("a", "b"):
            started.append(start_cluster(folder / f"qcluster-{name}.log", tmp_path_factory.getbasetemp()))
        housekeeping = start_housekeeping(folder / "housekeeping.log", ETL_LEADER_LEASE_SECONDS=3)
        yield started
    finally:
        if housekeeping is not None:
            stop_process(housekeeping, timeout=20)
        for cluster in started:
            cluster.stop()


def wait_until_ended(ids, clusters):
    wait_for(lambda: not Run.objects.filter(pk__in=ids).exclude(status__in=Run.FINISHED).exists(), timeout=180,
             message=lambda: f"every run to end\n{clusters[0].log()[-1500:]}\n{clusters[1].log()[-1500:]}")
    return list(Run.objects.filter(pk__in=ids).order_by("scheduled_for", "id"))


@pytest.fixture
def busy_source(organization, tmp_path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return factories.sqlite_source(organization, tmp_path / "busy.sqlite3", "CREATE TABLE t (x int)",
                                   name="Busy DB")


def test_a_connections_run_slots_hold_across_two_clusters(clusters, organization, owner, busy_source):
    busy_source.max_runs = CAP
    busy_source.save()
    project = factories.project(organization, owner, "Pooled", mode="parallel", max_parallel=20)
    tasks = [factories.task(project, f"Export {n}", source_connection=busy_source, query=BUSY_QUERY)
             for n in range(RUNS)]
    sampler = Sampler(busy_source.pk)
    sampler.start()
    try:
        ids = [queueing.enqueue_run(task).pk for task in tasks]
        finished = wait_until_ended(ids, clusters)
    finally:
        sampler.done.set()
        sampler.join(timeout=10)
    workers = {cluster.process.pid: set(cluster.worker_pids()) for cluster in clusters}
    assert [run.status for run in finished] == ["succeeded"] * RUNS, [run.error for run in finished]
    assert sampler.samples > 10 and sampler.highest == CAP, "the cap was reached and never exceeded (sampled)"
    assert most_at_once(finished) == CAP, "the cap was reached and never exceeded (run times)"
    ran_on = {main for run in finished for main, pids in workers.items() if int(run.worker.split(":")[1]) in pids}
    assert ran_on == set(workers), "both clusters ran some of the runs"


def test_a_backfill_runs_its_dates_in_order_at_most_two_at_once_across_two_clusters(clusters, organization, owner,
                                                                                      busy_source):
    project = factories.project(organization, owner, "Backfilled", time_zone="Europe/Paris")
    task = factories.task(project, "Daily", source_connection=busy_source, query=BUSY_QUERY, max_instances=10,
                          file_name="daily_{today:%Y%m%d}.csv")
    batch, _ = backfill.start(project, task, dt.date(2024, 3, 1), dt.date(2024, 3, 6), max_dates=2)
    runs = wait_until_ended(list(batch.runs.values_list("pk", flat=True)), clusters)
    assert [run.status for run in runs] == ["succeeded"] * 6, [run.error for run in runs]
    assert [run.files.get().name for run in runs] == [f"daily_2024030{day}.csv" for day in range(1, 7)]
    assert most_at_once(runs) == 2, "two dates at once, never three"
    # Dates start in date order: a date starts only once one of the two dates before it has ended (whichever
    # ended first; the two run at once and need not end in order).
    for first, second, later in zip(runs, runs[1:], runs[2:]):
        assert later.started_at >= min(first.finished_at, second.finished_at)
