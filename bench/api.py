"""api_bulk_create: 1,000 tasks created in one POST /api/v1/tasks/bulk/, seconds, and the SQL queries it took;
api_bulk_unchanged: the same request again (each task matched, compared, nothing saved).

Goal: <= 5 s on this machine and <= 30 queries per 100 tasks; both figures are printed (queries_per_100; every
query counted by an execute wrapper, which has no cap, unlike CaptureQueriesContext's 9,000).
Runs on the embedded default database (SQLite) in a fresh data folder, like the pages bench.
"""
import os
import subprocess
import sys
import tempfile
import time

GOAL_S = 5
TASKS = int(os.environ.get("BENCH_API_TASKS", 1000))


def child():
    from bench.common import emit, setup_django

    setup_django()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from api.models import ApiToken
    from connections.models import Connection
    from projects.models import Organization, Project

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench Org")
    user = User.objects.create_user("bench")
    org.set_member(user, "editor")
    source = Connection.objects.create(organization=org, name="Bench DB", kind="postgresql", host="127.0.0.1",
                                       port=5432, database="shop", username="u")
    target = Connection.objects.create(organization=org, name="Drop", kind="sftp", host="127.0.0.1", port=22,
                                       username="u")
    project = Project.objects.create(organization=org, name="Tables", owner=user)
    items = [{"project": project.pk, "name": f"extract_{n:04d}", "source_kind": "query",
              "source_connection": source.pk, "query": f"SELECT * FROM table_{n:04d}",
              "file_name": f"table_{n:04d}_{{today:%Y%m%d}}.csv",
              "destinations": [{"connection": target.pk, "folder": "in"}]} for n in range(TASKS)]
    _, key = ApiToken.issue(user, "bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        start, cpu_start = time.perf_counter(), time.process_time()
        response = client.post("/api/v1/tasks/bulk/", items, format="json")
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert response.status_code == 200 and response.json()["created"] == TASKS, response.content[:2000]
    if os.environ.get("BENCH_API_SQL"):
        for sql in queries:
            print(sql[:150], file=sys.stderr)
    # The process's CPU time beside the wall time: on a shared machine the wall time mostly measures the others.
    emit("api_bulk_create", seconds, "s", ref=GOAL_S, ratio=seconds / GOAL_S, tasks=TASKS,
         cpu_seconds=round(cpu_seconds, 2), queries=len(queries), queries_per_100=len(queries) * 100 / TASKS)
    # The same request again: every task matched and found unchanged (nothing saved), as a re-run script sends it.
    start, cpu_start = time.perf_counter(), time.process_time()
    response = client.post("/api/v1/tasks/bulk/", items, format="json")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert response.status_code == 200 and response.json()["unchanged"] == TASKS, response.content[:2000]
    emit("api_bulk_unchanged", seconds, "s", tasks=TASKS, cpu_seconds=round(cpu_seconds, 2))


def main():
    env = {**os.environ, "ETL_DATA_DIR": tempfile.mkdtemp(prefix="etl-bench-api-"), "DJANGO_DEBUG": "0"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "bench.api", "--child"], check=True, env=env)


if __name__ == "__main__":
    child() if sys.argv[1:2] == ["--child"] else main()
