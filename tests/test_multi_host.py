"""Two worker "hosts" (two clusters, each with its own ETL_DATA_DIR) on one database, a shared archive folder and
two housekeeping processes: a third process (this one, with a data folder of its own) downloads every file, and
each trigger due time fires once. On the session's database (PostgreSQL when the suite runs on it)."""
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connections

from runs import queueing
from runs.models import Run
from tests.fixtures.scheduling import MANAGE, QCluster, cluster_environment, start_housekeeping, wait_for
from tests.servers.common import stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]  # starts its own servers or processes


def start_host(folder, shared, roots):
    """A worker host: `manage.py qcluster` with its own data folder, the shared database and archive."""
    folder.mkdir()
    extra = {"ETL_DATA_DIR": folder, "ETL_ARCHIVE_DIR": shared, "ETL_LOCAL_ROOTS": roots}
    database = django_settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):  # the data folder no longer holds the database: name it
        extra["DATABASE_URL"] = f"sqlite:///{database['NAME']}"
    log_path = folder / "qcluster.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(MANAGE), "qcluster"], stdout=log, stderr=subprocess.STDOUT,
                                   env=cluster_environment(**extra), cwd=MANAGE.parent)
    cluster = QCluster(process, log_path)
    wait_for(lambda: "running." in cluster.log() or process.poll() is not None, timeout=60, message="a cluster")
    assert process.poll() is None, cluster.log()[-2000:]
    return cluster, extra


def test_every_file_of_two_worker_hosts_is_downloadable_from_a_third_node_and_triggers_fire_once(
        django_db_setup, project, add_task, add_trigger, owner, client, tmp_path, tmp_path_factory, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    shared = tmp_path / "shared-archive"
    shared.mkdir()
    connections.close_all()
    hosts, loops = [], []
    try:
        for name in ("host-a", "host-b"):
            hosts.append(start_host(tmp_path / name, shared, tmp_path_factory.getbasetemp()))
        loops = [start_housekeeping(tmp_path / f"housekeeping-{n}.log", ETL_LEADER_LEASE_SECONDS=3,
                                    **{k: v for k, v in hosts[n][1].items() if k != "ETL_DATA_DIR"})
                 for n in (0, 1)]
        tasks = [add_task(f"Export {n}") for n in range(6)]
        runs = [queueing.enqueue_run(task) for task in tasks for _ in range(2)]
        ticker = add_task("Ticker")
        trigger = add_trigger(project, second="*")
        wait_for(lambda: not Run.objects.filter(pk__in=[run.pk for run in runs]).exclude(
            status="succeeded").exists(), timeout=60, message="every run on one host or the other")
        wait_for(lambda: ticker.runs.count() >= 3, timeout=20, message="three fires")
        trigger.enabled = False
        trigger.save()
        time.sleep(1)

        pids = {cluster.process.pid: set(cluster.worker_pids()) for cluster, _ in hosts}
        finished = list(Run.objects.filter(pk__in=[run.pk for run in runs]))
        ran_on = {next((main for main, workers in pids.items() if int(run.worker.split(":")[1]) in workers), None)
                  for run in finished}
        settings.ETL_DATA_DIR = tmp_path / "web-node"  # the third node: neither host's folder
        settings.ETL_ARCHIVE_DIR = str(shared)
        client.force_login(owner)
        for run in finished:
            record = run.files.get()
            response = client.get(f"/runs/files/{record.pk}/download/")
            assert response.status_code == 200, record.stored_path
            assert b"".join(response.streaming_content).startswith(b"id,customer")
        assert ran_on == set(pids), "both hosts ran some of the runs"
        fires = list(ticker.runs.values_list("scheduled_for", flat=True))
        assert len(fires) == len(set(fires)) >= 3, "two housekeeping loops, each due time fired once"
    finally:
        for loop in loops:
            stop_process(loop, timeout=20)
        for cluster, _ in hosts:
            cluster.stop()
