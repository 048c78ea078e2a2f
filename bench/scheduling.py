"""trigger_lateness_p95(_busy), reap_delay and runs_per_second, with a real `manage.py qcluster` (2 workers) and
`manage.py housekeeping` beside it, as `serve` starts them.

Each setup runs in its own child process (settings are read from the environment at start):
- embedded: SQLite + django-q2's ORM broker (the default install);
- postgres+redis: a throwaway PostgreSQL database on 127.0.0.1:5432 and Redis database 15.

trigger_lateness_p95: a few hundred cron triggers (one project with one trivial task each) fall due over ~30 s,
ten per second; lateness = the run's start minus the trigger's due time.
trigger_lateness_p95_busy: both workers run a CPU-heavy query (both cores busy) while 60 triggers fall due;
lateness = the fire (its run created) minus the due time, since no run can start before a worker is free.
reap_delay: then a busy worker is killed (SIGKILL); seconds until its run is terminal, with the other worker
still busy; ref = ETL_RUN_LEASE_SECONDS (10 here) + 15.
runs_per_second: trivial runs (a 3-row SQLite query to CSV, no destination) queued at once, then completed by the
two workers: runs / (last finish - first start).
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TRIGGERS = 300
PER_SECOND = 10
RUNS = 300
BUSY_TRIGGERS = 60
LEASE = 10
# A few minutes of CPU inside SQLite: keeps a worker (and its core) busy until it is cancelled.
HEAVY_QUERY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000000) "
               "SELECT count(*) FROM c")
ROOT = Path(__file__).resolve().parents[1]


def main():
    from bench.common import emit

    for setup in ("embedded", "postgres+redis"):
        args = [sys.executable, "-m", "bench.scheduling", setup]
        result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**os.environ})
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode or not lines:
            emit(f"scheduling_{setup}", 0, "error", error=(result.stderr or result.stdout)[-800:])
            continue
        for line in lines:
            emit(**line)


# --- the child ----------------------------------------------------------------------------------------------

def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def prepare_environment(setup):
    os.environ["ETL_DATA_DIR"] = tempfile.mkdtemp(prefix="etl-bench-scheduling-")
    # The source database may not live in the data folder: give it a root of its own beside it.
    os.environ["ETL_LOCAL_ROOTS"] = tempfile.mkdtemp(prefix="etl-bench-scheduling-source-")
    os.environ["ETL_WORKERS"] = "2"
    os.environ["ETL_QUEUE_NAME"] = f"etl_bench_{uuid.uuid4().hex[:8]}"
    os.environ["ETL_RUN_LEASE_SECONDS"] = str(LEASE)
    os.environ["DJANGO_SECRET_KEY"] = "bench-" + uuid.uuid4().hex
    cleanup = []
    if setup == "postgres+redis":
        import psycopg

        name = f"etl_bench_sched_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"

        def drop():
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as a:
                a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            import redis

            client = redis.Redis.from_url(os.environ["REDIS_URL"])
            for key in client.scan_iter(f"django_q:{os.environ['ETL_QUEUE_NAME']}*"):
                client.delete(key)

        cleanup.append(drop)
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
    return cleanup


def start_housekeeping():
    log = open(Path(os.environ["ETL_DATA_DIR"]) / "housekeeping.log", "w")
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "housekeeping"], stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def start_cluster():
    log = open(Path(os.environ["ETL_DATA_DIR"]) / "qcluster.log", "w+")
    process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "qcluster"], stdout=log,
                               stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while True:
        log.seek(0)
        if "running." in log.read():
            return process
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("qcluster did not start")
        time.sleep(0.1)


def fixtures(count):
    import sqlite3

    from django.contrib.auth.models import User

    from connections.models import Connection
    from projects.models import Organization, Project
    from tasks.models import Task

    path = Path(os.environ["ETL_LOCAL_ROOTS"]) / "source.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
    organization = Organization.objects.create(name="Bench")
    user = User.objects.create(username="bench")
    source = Connection.objects.create(organization=organization, name="Source", kind="sqlite", path=str(path))
    projects = Project.objects.bulk_create([Project(organization=organization, name=f"P{n}", owner=user)
                                            for n in range(count)])
    tasks = Task.objects.bulk_create([Task(project=project, name="T", source_connection=source,
                                           query="SELECT id, name FROM t") for project in projects])
    return projects, tasks


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def measure_lateness(projects, tasks):
    import datetime as dt

    from django.utils import timezone

    from projects.models import Trigger
    from runs.models import Run

    count, per_second = TRIGGERS, PER_SECOND
    first = (timezone.now() + dt.timedelta(seconds=6)).replace(microsecond=0)
    for index, project in enumerate(projects[:count]):
        due = first + dt.timedelta(seconds=index // per_second)
        Trigger.objects.create(project=project, kind="cron", hour=str(due.hour), minute=str(due.minute),
                               second=str(due.second))
    ids = [task.pk for task in tasks[:count]]
    finished = wait_until(lambda: Run.objects.filter(task__in=ids, started_at__isnull=False).count() >= count,
                          timeout=count / per_second + 90)
    lateness = [(run.started_at - run.scheduled_for).total_seconds() for run in
                Run.objects.filter(task__in=ids, started_at__isnull=False)]
    return lateness, finished, count


def measure_throughput(tasks):
    from django.db import transaction
    from django.db.models import Max, Min

    from runs.queueing import enqueue_run
    from runs.models import Run

    started = time.perf_counter()
    with transaction.atomic():
        ids = [enqueue_run(tasks[index % TRIGGERS]).pk for index in range(RUNS)]
    wait_until(lambda: not Run.objects.filter(pk__in=ids).exclude(status__in=Run.FINISHED).exists(), timeout=300)
    wall = time.perf_counter() - started
    window = Run.objects.filter(pk__in=ids).aggregate(first=Min("started_at"), last=Max("finished_at"))
    succeeded = Run.objects.filter(pk__in=ids, status="succeeded").count()
    return RUNS / (window["last"] - window["first"]).total_seconds(), wall, succeeded


def measure_busy(projects, tasks):
    """Both workers busy with a heavy query: fire lateness of triggers falling due, then the reap delay."""
    import datetime as dt

    from django.utils import timezone

    from connections.models import Connection
    from projects.models import Trigger
    from runs.models import Run
    from runs.queueing import enqueue_run
    from tasks.models import Task

    source = Connection.objects.get(name="Source")
    heavy = [Task.objects.create(project=projects[-1 - n], name=f"Heavy {n}", source_connection=source,
                                 query=HEAVY_QUERY, retries=0) for n in range(2)]
    busy = [enqueue_run(task) for task in heavy]
    if not wait_until(lambda: Run.objects.filter(pk__in=[run.pk for run in busy], status="running").count() == 2,
                      timeout=60):
        raise RuntimeError("the heavy runs did not start")
    chosen = projects[TRIGGERS:TRIGGERS + BUSY_TRIGGERS]  # projects the quiet measure did not use
    ids = [task.pk for task in tasks[TRIGGERS:TRIGGERS + BUSY_TRIGGERS]]
    first = (timezone.now() + dt.timedelta(seconds=4)).replace(microsecond=0)
    for index, project in enumerate(chosen):
        due = first + dt.timedelta(seconds=index // PER_SECOND)
        Trigger.objects.create(project=project, kind="cron", hour=str(due.hour), minute=str(due.minute),
                               second=str(due.second))
    fired = wait_until(lambda: Run.objects.filter(task__in=ids, scheduled_for__gte=first).count() >= BUSY_TRIGGERS,
                       timeout=BUSY_TRIGGERS / PER_SECOND + 60)
    lateness = [(created - due).total_seconds() for created, due in Run.objects.filter(
        task__in=ids, scheduled_for__gte=first).values_list("created_at", "scheduled_for")]
    still_busy = Run.objects.filter(pk__in=[run.pk for run in busy], status="running").count()
    victim = Run.objects.get(pk=busy[0].pk)
    os.kill(int(victim.worker.split(":")[1]), 9)
    killed = time.monotonic()
    wait_until(lambda: Run.objects.filter(pk=victim.pk, status__in=Run.FINISHED).exists(), timeout=LEASE + 120)
    reap_delay = time.monotonic() - killed
    Run.objects.filter(pk__in=[run.pk for run in busy], status="running").update(cancel_requested=True)
    return lateness, fired, still_busy, reap_delay


@contextlib.contextmanager
def benchmark_cluster(setup, prepare=None):
    """In the benchmark's child process: its environment (`setup`: embedded or postgres+redis), Django with a
    migrated database, what `prepare()` makes before the workers start (yielded), a cluster and the housekeeping
    loop; all stopped and removed afterwards."""
    cleanup = prepare_environment(setup)
    cluster = housekeeper = None
    try:
        sys.path.insert(0, str(ROOT))
        from bench.common import setup_django

        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        prepared = prepare() if prepare else None
        cluster = start_cluster()
        housekeeper = start_housekeeping()
        yield prepared
    finally:
        from bench.common import stop_and_clean

        stop_and_clean((housekeeper, cluster), cleanup)


def child(setup):
    with benchmark_cluster(setup, lambda: fixtures(TRIGGERS + BUSY_TRIGGERS + 2)) as (projects, tasks):
        from bench.common import emit

        lateness, complete, count = measure_lateness(projects, tasks)
        emit("trigger_lateness_p95", percentile(lateness, 0.95), "s", ref=1.0,
             ratio=percentile(lateness, 0.95) / 1.0, setup=setup, scheduler="housekeeping, every second",
             triggers=count, started=len(lateness), median=round(percentile(lateness, 0.5), 3),
             max=round(max(lateness), 3))
        rate, wall, succeeded = measure_throughput(tasks)
        emit("runs_per_second", rate, "runs/s", ref=20.0, ratio=rate / 20.0, setup=setup, workers=2,
             runs=RUNS, succeeded=succeeded, wall_seconds=round(wall, 2))
        lateness, complete, still_busy, reap_delay = measure_busy(projects, tasks)
        emit("trigger_lateness_p95_busy", percentile(lateness, 0.95), "s", ref=1.0,
             ratio=percentile(lateness, 0.95) / 1.0, setup=setup, measured="fire (run created) - due",
             triggers=BUSY_TRIGGERS, fired=len(lateness), workers_busy=still_busy,
             median=round(percentile(lateness, 0.5), 3), max=round(max(lateness), 3))
        emit("reap_delay", reap_delay, "s", ref=LEASE + 15, ratio=reap_delay / (LEASE + 15), setup=setup,
             lease_seconds=LEASE)

if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        main()
