"""page_all_tasks, page_my_tasks, page_task_details, page_task_form, page_task_pick, page_runs, page_dashboard:
server time and SQL queries at scale.

10,000 tasks in 200 projects, 50 owners and 1,000,000 runs on the embedded default (SQLite). The runs spread
over the last 100 days (so about 10,000 fall in the dashboard's last 24 hours), each lasting up to 10 minutes,
with a few hundred running and queued now; every project has a trigger, hourly or daily. The reference is the
200 ms goal; `queries` must not grow with the data (the tests assert that).
"""
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_MS = 200
OWNERS, PROJECTS, TASKS, RUNS = 50, 200, 10_000, 1_000_000
DAYS, GOING = 100, 300  # the runs' time span; how many run and wait now


def populate():
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from connections.models import Connection
    from projects.models import Organization, Project, Trigger
    from tasks.models import Task

    rng = random.Random(1)
    with transaction.atomic():
        org = Organization.objects.create(name="Bench Org")
        users = User.objects.bulk_create([User(username=f"owner{i:02d}") for i in range(OWNERS)])
        org.members.add(*users)
        source = Connection.objects.create(organization=org, name="Bench DB", kind="sqlite", path="/dev/null")
        projects = Project.objects.bulk_create([
            Project(organization=org, name=f"Project {i:03d}", owner=users[i % OWNERS]) for i in range(PROJECTS)])
        Task.objects.bulk_create([
            Task(project=projects[i % PROJECTS], name=f"Task {i:05d}", source_connection=source, query="SELECT 1",
                 run_rank=i // PROJECTS) for i in range(TASKS)], batch_size=2000)
        Trigger.objects.bulk_create([  # next_run_at as arming would set it: within the hour or the day
            Trigger(project=project, kind="cron", minute=str(i % 60), hour="" if i % 4 == 0 else str(i % 24),
                    next_run_at=timezone.now() + datetime.timedelta(minutes=i % 60 + 1))
            for i, project in enumerate(projects)])
    task_ids = list(Task.objects.values_list("id", flat=True))
    now = timezone.now()
    statuses = ["succeeded"] * 8 + ["failed", "warning"]

    def microseconds(started, finished):  # how SQLite keeps a duration
        return None if finished is None else (finished - started) // datetime.timedelta(microseconds=1)

    def stored(moment):  # as Django stores a time in SQLite: UTC, without the zone
        return None if moment is None else moment.replace(tzinfo=None).isoformat(sep=" ")

    # Oldest first, so ids grow with time as they do in use; the runs going now come last.
    ages = sorted((rng.uniform(600, DAYS * 86400) for _ in range(RUNS - GOING)), reverse=True)

    def finished_run(age):
        started = now - datetime.timedelta(seconds=age)
        return (rng.choice(task_ids), rng.choice(statuses), started, started, started,
                started + datetime.timedelta(seconds=rng.randint(1, 600)))

    def going_run(number):  # running now (started within the hour) or queued
        started = now - datetime.timedelta(seconds=rng.randint(1, 3600)) if number % 2 else None
        return (rng.choice(task_ids), "running" if started else "queued", now, now, started, None)

    with transaction.atomic(), connection.cursor() as cursor:
        for first in range(0, RUNS, 50_000):
            rows = [finished_run(ages[number]) if number < len(ages) else going_run(number)
                    for number in range(first, min(first + 50_000, RUNS))]
            cursor.executemany(
                "INSERT INTO runs_run (task_id, status, trigger, attempt, scheduled_for, created_at, started_at, "
                "finished_at, took, error, query_text, columns, drift, worker, priority, cancel_requested) "
                "VALUES (%s, %s, 'schedule', 1, %s, %s, %s, %s, %s, '', '', '[]', '{}', '', 50, %s)",
                [(task, status, *map(stored, times), microseconds(times[2], times[3]), False)
                 for task, status, *times in rows])
    return users[0], task_ids[0]


def measure(client, url, repeat=7):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches and templates
    timings = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(timings), len(queries)


def child():
    from bench.common import emit, setup_django

    setup_django()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    owner, task_id = populate()
    client = Client()
    client.force_login(owner)
    for name, url in [("page_all_tasks", "/tasks/"), ("page_my_tasks", "/tasks/mine/"),
                      ("page_task_details", f"/tasks/{task_id}/"), ("page_runs", "/runs/"),
                      ("page_runs_failed_by_duration", "/runs/?status=failed&sort=-duration"),
                      ("page_runs_by_start", "/runs/?sort=-started"), ("page_dashboard", "/")]:
        ms, queries = measure(client, url)
        emit(name, ms, "ms", ref=GOAL_MS, ratio=ms / GOAL_MS, queries=queries, tasks=TASKS, runs=RUNS)
    # The edit form needs an editor; the owners above are viewers, which the other pages measure as they were.
    from django.contrib.auth.models import User

    from projects.models import Organization

    editor = User.objects.create_user("bench-editor")
    Organization.objects.get(name="Bench Org").members.add(editor, through_defaults={"role": "editor"})
    client.force_login(editor)
    # The form's "Runs after" search (a picker of 10,000 tasks), as an analyst types a name.
    for name, url in [("page_task_form", f"/tasks/{task_id}/edit/"),
                      ("page_task_pick", f"/tasks/pick/task/?q=Task+0999&exclude={task_id}")]:
        ms, queries = measure(client, url)
        emit(name, ms, "ms", ref=GOAL_MS, ratio=ms / GOAL_MS, queries=queries, tasks=TASKS, runs=RUNS)


def main():
    # A fresh data folder (and so a fresh SQLite database) for the populated portal.
    env = {**os.environ, "ETL_DATA_DIR": tempfile.mkdtemp(prefix="etl-bench-pages-"), "DJANGO_DEBUG": "0"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "bench.pages", "--child"], check=True, env=env)


if __name__ == "__main__":
    child() if sys.argv[1:2] == ["--child"] else main()
