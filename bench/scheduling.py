"""trigger_lateness_p95 and runs_per_second, with a real `manage.py qcluster` (2 workers).

Each setup runs in its own child process (settings are read from the environment at start):
- embedded: SQLite + django-q2's ORM broker (the default install);
- postgres+redis: a throwaway PostgreSQL database on 127.0.0.1:5432 and Redis database 15.

trigger_lateness_p95: a few hundred cron triggers (one project with one trivial task each) fall due over ~30 s,
ten per second; lateness = the run's start minus the trigger's due time. With ETL_SCHEDULER_TICK=0 (django-q2's
own 30 s scheduler cycle only) it is measured too, on the embedded setup, for comparison.
runs_per_second: trivial runs (a 3-row SQLite query to CSV, no destination) queued at once, then completed by the
two workers: runs / (last finish - first start).
"""
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
ROOT = Path(__file__).resolve().parents[1]


def main():
    from bench.common import emit

    setups = [("embedded", {}), ("postgres+redis", {}), ("embedded", {"ETL_SCHEDULER_TICK": "0"})]
    for setup, extra in setups:
        stock = extra.get("ETL_SCHEDULER_TICK") == "0"
        args = [sys.executable, "-m", "bench.scheduling", setup] + (["--stock"] if stock else [])
        result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **extra})
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


def prepare_environment(setup, stock):
    os.environ["ETL_DATA_DIR"] = tempfile.mkdtemp(prefix="etl-bench-scheduling-")
    # The source database may not live in the data folder: give it a root of its own beside it.
    os.environ["ETL_LOCAL_ROOTS"] = tempfile.mkdtemp(prefix="etl-bench-scheduling-source-")
    os.environ["ETL_WORKERS"] = "2"
    os.environ["ETL_QUEUE_NAME"] = f"etl_bench_{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("ETL_SCHEDULER_TICK", "0" if stock else "1")
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


def measure_lateness(projects, tasks, stock):
    import datetime as dt

    from django.utils import timezone

    from projects.models import Trigger
    from runs.models import Run

    count = 60 if stock else TRIGGERS
    per_second = 2 if stock else PER_SECOND
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
        ids = [enqueue_run(tasks[index % len(tasks)]).pk for index in range(RUNS)]
    wait_until(lambda: not Run.objects.filter(pk__in=ids).exclude(status__in=Run.FINISHED).exists(), timeout=300)
    wall = time.perf_counter() - started
    window = Run.objects.filter(pk__in=ids).aggregate(first=Min("started_at"), last=Max("finished_at"))
    succeeded = Run.objects.filter(pk__in=ids, status="succeeded").count()
    return RUNS / (window["last"] - window["first"]).total_seconds(), wall, succeeded


def child(setup, stock):
    cleanup = prepare_environment(setup, stock)
    cluster = None
    try:
        sys.path.insert(0, str(ROOT))
        from bench.common import emit, setup_django

        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        projects, tasks = fixtures(TRIGGERS)
        cluster = start_cluster()
        lateness, complete, count = measure_lateness(projects, tasks, stock)
        scheduler = "django-q2's own 30 s cycle" if stock else f"tick {os.environ['ETL_SCHEDULER_TICK']} s"
        emit("trigger_lateness_p95", percentile(lateness, 0.95), "s", ref=1.0,
             ratio=percentile(lateness, 0.95) / 1.0, setup=setup, scheduler=scheduler, triggers=count,
             started=len(lateness), median=round(percentile(lateness, 0.5), 3), max=round(max(lateness), 3))
        if not stock:
            rate, wall, succeeded = measure_throughput(tasks)
            emit("runs_per_second", rate, "runs/s", ref=20.0, ratio=rate / 20.0, setup=setup, workers=2,
                 runs=RUNS, succeeded=succeeded, wall_seconds=round(wall, 2))
    finally:
        if cluster is not None and cluster.poll() is None:
            cluster.terminate()  # SIGTERM to the cluster's main process only
            try:
                cluster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cluster.kill()
        from django.db import connections

        connections.close_all()
        for step in cleanup:
            step()
        import shutil

        shutil.rmtree(os.environ["ETL_DATA_DIR"], ignore_errors=True)
        shutil.rmtree(os.environ["ETL_LOCAL_ROOTS"], ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1], "--stock" in sys.argv)
    else:
        main()
