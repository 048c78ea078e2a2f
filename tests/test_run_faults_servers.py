"""Runs that survive their servers: Redis (the broker) down when a run is asked for, or stopped under a running run
and started again, and a restart of the app's own PostgreSQL. Each test starts its own server on a free loopback port and stops it by PID."""
import subprocess
import sys
import time

import psycopg
import pytest

from runs.models import Run
from runs.queueing import BROKER_DOWN
from tests.fixtures.app_world import delivered, in_app, manage
from tests.fixtures.scheduling import MANAGE, cluster_environment, wait_for
from tests.servers import postgres as pg
from tests.servers.private_postgres import PrivatePostgres
from tests.servers.common import free_port
from tests.servers.redis_server import Redis

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis():
    server = Redis(free_port())
    yield server
    server.stop()


def test_a_run_queued_while_the_broker_is_down_starts_when_it_returns(redis, start_cluster, counted_task,
                                                                      counted_source, outbox):
    task = counted_task("Broker down", seconds=0)
    # Redis is not running: the command records the run and says so, exit 0.
    command = subprocess.run([sys.executable, str(MANAGE), "run_task", str(task.pk)], capture_output=True, text=True,
                             env=cluster_environment(REDIS_URL=redis.url), cwd=MANAGE.parent, timeout=60)
    run = task.runs.get()
    assert command.returncode == 0, command.stderr[-2000:]
    assert command.stdout.strip() == f"run {run.pk} {BROKER_DOWN}"
    assert run.status == "queued" and counted_source.executions() == 0
    redis.start()
    back = time.monotonic()
    cluster = start_cluster(REDIS_URL=redis.url)
    wait_for(lambda: Run.objects.filter(pk=run.pk).exclude(status="queued").exists(), timeout=10,
             message=lambda: f"the run to start\n{cluster.log()[-3000:]}")
    assert time.monotonic() - back < 10
    wait_for(lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists(), timeout=15,
             message=lambda: f"the run to end\n{cluster.log()[-3000:]}")
    time.sleep(2)  # a second start would show now
    assert task.runs.count() == 1 and counted_source.executions() == 1 and outbox.delivered() == [run.pk]


# --- the app's own PostgreSQL restarted under running runs ---------------------------------------------------

@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


def test_runs_survive_a_restart_of_the_app_database_and_end_once(private_postgres, start_cluster, counted_source,
                                                                 tmp_path):
    """The app database (PostgreSQL, the ORM broker in it too) restarts while two runs wait on their source query
    (on another server) and a third is queued: every run reconnects and carries on, and ends once."""
    private_postgres.create_database("etl_app")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    # A lease long enough to ride out the restart (the writes retry for half of it, runs/durable.py).
    app = {"DATABASE_URL": private_postgres.url("etl_app"), "ETL_DATA_DIR": tmp_path / "app-data",
           "ETL_RUN_LEASE_SECONDS": 20}
    environment = cluster_environment(ETL_LOCAL_ROOTS=tmp_path, **app)
    manage(environment, "migrate", "--noinput", "-v0")
    host, port, user = pg.dsn_parts()
    world = in_app(environment, "seed", source={"host": host, "port": port, "username": user,
                                                "database": counted_source.database},
                   outbox=str(outbox), seconds=[6, 6, 6])
    cluster = start_cluster(**app)
    for task in world["tasks"]:
        manage(environment, "run_task", str(task))
    wait_for(lambda: counted_source.executions() == 2, timeout=90,
             message=lambda: f"two queries to start\n{cluster.log()[-3000:]}")

    private_postgres.restart()

    def finished():
        with psycopg.connect(private_postgres.url("etl_app")) as conn:
            return conn.execute("SELECT count(*) FROM runs_run WHERE status NOT IN ('queued', 'running')"
                                ).fetchone()[0]

    wait_for(lambda: finished() >= 3, timeout=90, interval=0.5,
             message=lambda: f"the three runs to end\n{cluster.log()[-4000:]}")
    time.sleep(3)  # a second attempt, delivery or record would show now
    seen = in_app(environment, "report", tasks=world["tasks"])
    runs = seen["runs"]
    assert [(run["task"], run["attempt"], run["status"]) for run in runs] == \
        [(task, 1, "succeeded") for task in world["tasks"]], [run["log"] for run in runs]
    assert counted_source.executions() == 3  # counted by the source database: no query ran twice
    assert delivered(outbox) == [run["id"] for run in runs]  # one file per run, from its one attempt
    assert seen["files"] == 3 and all(run["files"] == 1 and run["rows"] == 1 for run in runs)
    assert all(run["query_text"] for run in runs)
    assert not any(line.startswith("Interrupted") for run in runs for line in run["log"])


def test_redis_stopped_under_a_running_run_and_started_again_every_run_ends_once(redis, start_cluster, counted_task,
                                                                                  counted_source, outbox):
    """The broker goes away while a run runs and another is asked for: the running one ends (its follow-ups wait
    for the broker), the command records the new one and says so, exit 0; once Redis is back the new run starts.
    Every run ends once: two queries at the source, two deliveries."""
    redis.start()
    cluster = start_cluster(REDIS_URL=redis.url)
    first_task, second_task = counted_task("Before the outage", seconds=5), counted_task("During", seconds=0)
    command = subprocess.run([sys.executable, str(MANAGE), "run_task", str(first_task.pk)], capture_output=True,
                             text=True, env=cluster_environment(REDIS_URL=redis.url), cwd=MANAGE.parent, timeout=60)
    assert command.returncode == 0 and BROKER_DOWN not in command.stdout, command.stderr
    first = first_task.runs.get()
    wait_for(lambda: counted_source.executions() == 1, timeout=30,
             message=lambda: f"the first query to start\n{cluster.log()[-3000:]}")
    redis.stop()
    command = subprocess.run([sys.executable, str(MANAGE), "run_task", str(second_task.pk)], capture_output=True,
                             text=True, env=cluster_environment(REDIS_URL=redis.url), cwd=MANAGE.parent, timeout=60)
    second = second_task.runs.get()
    assert command.returncode == 0 and command.stdout.strip() == f"run {second.pk} {BROKER_DOWN}", command.stderr
    wait_for(lambda: Run.objects.filter(pk=first.pk, status="succeeded").exists(), timeout=30,
             message=lambda: f"the first run to end without the broker\n{cluster.log()[-3000:]}")
    assert Run.objects.get(pk=second.pk).status == "queued"
    redis.start()  # the same port: the cluster and the housekeeping loop find it again
    wait_for(lambda: Run.objects.filter(pk=second.pk, status="succeeded").exists(), timeout=60,
             message=lambda: f"the second run to end\n{cluster.log()[-3000:]}")
    time.sleep(2)  # a second start would show now
    assert [task.runs.count() for task in (first_task, second_task)] == [1, 1]
    assert counted_source.executions() == 2 and outbox.delivered() == sorted([first.pk, second.pk])
