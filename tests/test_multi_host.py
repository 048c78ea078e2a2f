"""Two worker "hosts" (two clusters, each with its own ETL_DATA_DIR) on one database, a shared archive folder and
two housekeeping processes: a third process (this one, with a data folder of its own) downloads every file, and
each trigger due time fires once. On the session's database (PostgreSQL when the suite runs on it).

Then the production path: two named hosts on PostgreSQL and Redis with the archive on SFTP, one killed mid-run."""
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import requests
from django.conf import settings as django_settings
from django.db import connections

from runs import queueing
from runs.models import Run
from tests import factories
from tests.fixtures.app_world import delivered, in_app, manage
from tests.fixtures.scheduling import MANAGE, QCluster, cluster_environment, start_housekeeping, wait_for
from tests.servers import postgres as pg
from tests.servers.common import free_port, require_binary, stop_process, wait_for_port
from tests.servers.redis_server import Redis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]  # starts its own servers or processes


def start_host(folder, shared, roots):
    """A worker host: `manage.py qcluster` with its own data folder, the shared database and archive."""
    folder.mkdir()
    # One worker per host: a host takes one job at a time from the broker, so the runs spread over both hosts
    # (with two, one host could take and finish every run before the other's turn).
    extra = {"ETL_DATA_DIR": folder, "ETL_ARCHIVE_DIR": shared, "ETL_LOCAL_ROOTS": roots, "ETL_WORKERS": 1}
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


# --- the production path: PostgreSQL + Redis, an archive on SFTP, a host lost ---------------------------------

def start_named_host(name, folder, environment):
    """A worker host named `name` (its own UTS namespace, so its workers sign runs "<name>:<pid>:..."): the cluster
    and the housekeeping loop, as `serve` starts them, with its own data folder."""
    folder.mkdir()
    env = {key: str(value) for key, value in {**environment, "ETL_DATA_DIR": folder}.items()}
    started = []
    for command in ("qcluster", "housekeeping"):
        log = open(folder / f"{command}.log", "w")
        started.append(subprocess.Popen(
            [require_binary("unshare"), "--uts", "sh", "-c", f'hostname {name} && exec "$0" "$@"', sys.executable,
             str(MANAGE), command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=MANAGE.parent))
    cluster = QCluster(started[0], folder / "qcluster.log")
    wait_for(lambda: "running." in cluster.log() or started[0].poll() is not None, timeout=90,
             message=lambda: f"the cluster of {name}")
    assert started[0].poll() is None, cluster.log()[-2000:]
    return cluster, started[1]


def web_node(environment, folder):
    """A third node: gunicorn alone, with a data folder of its own; returns (process, base URL)."""
    folder.mkdir()
    port = free_port()
    env = {key: str(value) for key, value in {**environment, "ETL_DATA_DIR": folder}.items()}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "etl_portal.wsgi:application", "--bind",
                                f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
                               stdout=open(folder / "web.log", "w"), stderr=subprocess.STDOUT, env=env,
                               cwd=MANAGE.parent)
    wait_for_port(port, process, timeout=60)
    return process, f"http://127.0.0.1:{port}"


def logged_in(base):
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30)
    answer = session.post(f"{base}/accounts/login/", timeout=30, headers={"Referer": f"{base}/accounts/login/"},
                          data={"username": "owner", "password": factories.PASSWORD,
                                "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert answer.status_code == 200 and "sessionid" in session.cookies, answer.text[-500:]
    return session


def test_two_hosts_on_postgres_and_redis_one_lost_mid_run_every_run_ends_once_and_every_file_reaches_a_third_node(
        django_db_setup, counted_source, sshd, tmp_path, tmp_path_factory):
    """Two worker hosts (named host-a and host-b, each its own data folder, cluster and housekeeping) share a fresh
    PostgreSQL database, a Redis of the test's own and an archive on the suite's SFTP server. host-a is killed
    (kill -9, every process) while it runs: its runs are failed as Interrupted once and retried once, on host-b.
    Counted outside the app: source executions = runs started, one delivery per task; a third web process
    downloads every file."""
    database, redis = pg.create_database("etl_hosts"), Redis(free_port())
    redis.start()
    archive = sshd.make_folder(f"hosts-archive-{tmp_path.name[-6:]}")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    host, port, user = pg.dsn_parts()
    environment = cluster_environment(
        DATABASE_URL=f"postgres://{user}@{host}:{port}/{database}", REDIS_URL=redis.url,
        ETL_DATA_DIR=tmp_path / "setup", ETL_LOCAL_ROOTS=tmp_path_factory.getbasetemp(),
        ETL_ARCHIVE_CONNECTION="Archive", ETL_RUN_LEASE_SECONDS=4, ETL_LEADER_LEASE_SECONDS=3)
    processes, web = [], None
    try:
        manage(environment, "migrate", "--noinput", "-v0")
        world = in_app(environment, "seed", source={"host": host, "port": port, "username": user,
                                                    "database": counted_source.database},
                       outbox=str(outbox), seconds=[8] * 8,
                       archive={"host": sshd.host, "port": sshd.port, "username": sshd.username,
                                "secrets": {"password": sshd.password}, "path": str(archive)})
        hosts = {name: start_named_host(name, tmp_path / name, environment) for name in ("host-a", "host-b")}
        processes = [process for cluster, loop in hosts.values() for process in (cluster.process, loop)]
        in_app(environment, "enqueue", tasks=world["tasks"])

        def running_on():
            with psycopg.connect(host=host, port=port, user=user, dbname=database) as conn:
                rows = conn.execute("SELECT id, worker FROM runs_run WHERE status = 'running'").fetchall()
            return {run: worker.split(":")[0] for run, worker in rows}

        wait_for(lambda: sorted(set(running_on().values())) == ["host-a", "host-b"], timeout=60,
                 message=lambda: f"both hosts running\n{hosts['host-a'][0].log()[-2000:]}")
        cluster_a, loop_a = hosts["host-a"]
        for pid in [loop_a.pid, cluster_a.process.pid, *cluster_a.worker_pids()]:
            os.kill(pid, signal.SIGKILL)  # the host is gone: its cluster and its housekeeping loop
        lost = sorted(run for run, name in running_on().items() if name == "host-a")
        assert lost

        def ended():
            with psycopg.connect(host=host, port=port, user=user, dbname=database) as conn:
                return conn.execute("SELECT count(*) FROM runs_run WHERE status = 'succeeded'").fetchone()[0]

        wait_for(lambda: ended() == len(world["tasks"]), timeout=120, interval=0.5,
                 message=lambda: f"every task to succeed\n{hosts['host-b'][0].log()[-3000:]}")
        time.sleep(3)  # a second retry or delivery would show now
        runs = in_app(environment, "report", tasks=world["tasks"])["runs"]
        web, base = web_node(environment, tmp_path / "web-node")
        processes.append(web)
        session = logged_in(base)
        downloads = {file_id: session.get(f"{base}/runs/files/{file_id}/download/", timeout=60)
                     for run in runs for file_id in run["file_ids"]}
    finally:
        for process in processes:
            stop_process(process, timeout=20)
        redis.stop()
        pg.drop_database(database)

    failed = [run for run in runs if run["status"] == "failed"]
    succeeded = [run for run in runs if run["status"] == "succeeded"]
    assert sorted(run["id"] for run in failed) == lost  # each lost run failed once ...
    assert all(run["error"].startswith("Interrupted: worker host-a:") for run in failed)
    assert sorted(run["task"] for run in succeeded) == sorted(world["tasks"])  # ... and each task succeeded once
    assert all(run["attempt"] == 2 and run["worker"].startswith("host-b:") for run in succeeded
               if run["task"] in {lost_run["task"] for lost_run in failed})
    assert len(runs) == len(world["tasks"]) + len(lost)  # one retry per lost run, none for the others
    assert counted_source.executions() == len(runs)  # counted by the source database: every run started once
    assert delivered(outbox) == sorted(run["id"] for run in succeeded)  # one delivery per task
    sent = {run["file_ids"][0]: next((outbox / str(run["id"])).iterdir()) for run in succeeded}
    assert sorted(downloads) == sorted(sent)  # one file per successful run, each read by the third node
    assert all(answer.status_code == 200 and answer.content == sent[file_id].read_bytes()
               for file_id, answer in downloads.items()), {key: answer.status_code for key, answer in downloads.items()}
    assert sorted(path.name for path in archive.iterdir()) == sorted(  # on the SFTP archive, nothing half-written
        f"{run['id']}-{sent[run['file_ids'][0]].name}" for run in succeeded)
