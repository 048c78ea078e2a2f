"""extract_postgres_csv and extract_memory_growth: the portal's PostgreSQL -> CSV extract against psql.

extract_postgres_csv_bound: the same rows from a query with a bound parameter (`WHERE id > %s`), which
COPY cannot take: the value goes into a session setting the statement reads, and COPY runs it.

psql runs alternately with the portal (`paired`): on a shared machine the load changes within a minute, and
a reference measured before the portal's runs made the ratio swing (0.64-0.98 for the same code).
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import emit, paired, run_child, setup_django

ROWS = 1_000_000
TABLE = "bench_extract"
QUERY = f"SELECT id, name, amount, created, updated, active, score, note FROM {TABLE} ORDER BY id"
ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def database_name():
    return os.environ.get("ETL_BENCH_DB", "etl_bench")


def prepare(dbname):
    import psycopg

    with psycopg.connect(**ADMIN, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(**ADMIN, dbname=dbname, autocommit=True) as conn:
        count = conn.execute(f"SELECT count(*) FROM pg_class WHERE relname = '{TABLE}'").fetchone()[0]
        if count and conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == ROWS:
            return
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"""CREATE TABLE {TABLE} AS
            SELECT g AS id, 'customer ' || g AS name, (g % 100000) / 100.0 AS amount,
                   DATE '2020-01-01' + (g % 2000) AS created,
                   TIMESTAMP '2020-01-01 00:00:00' + g * INTERVAL '1 minute' AS updated,
                   g % 3 = 0 AS active, g / 7.0::float8 AS score,
                   CASE WHEN g % 10 = 0 THEN NULL ELSE 'note, with "quotes" ' || (g % 97) END AS note
            FROM generate_series(1, {ROWS}) AS g""")
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def connection(dbname):
    from connections.models import Connection

    return Connection(kind="postgresql", host=ADMIN["host"], port=ADMIN["port"], username=ADMIN["user"],
                      database=dbname)


def portal_extract(dbname, out_path, limit=None):
    from runs import extract
    from runs.formats import CsvOptions

    query = QUERY + (f" LIMIT {limit}" if limit else "")
    return extract.extract_to_csv(connection(dbname).connector(), query, out_path, CsvOptions(),
                                   progress=lambda rows: None)


def portal_bound_extract(dbname, out_path):
    from runs import extract
    from runs.formats import CsvOptions

    query = QUERY.replace("ORDER BY", "WHERE id > %s ORDER BY")
    return extract.extract_to_csv(connection(dbname).connector(), query, out_path, CsvOptions(),
                                   progress=lambda rows: None, params=[0])


def psql_extract(dbname, out_path):
    subprocess.run(["psql", "-h", ADMIN["host"], "-p", str(ADMIN["port"]), "-U", ADMIN["user"], "-d", dbname, "-q",
                    "-c", f"\\copy ({QUERY}) to '{out_path}' csv header"], check=True)


def csv_figure(dbname, workdir):
    theirs, ours = paired(5, lambda: psql_extract(dbname, workdir / "psql.csv"),
                          lambda: portal_extract(dbname, workdir / "portal.csv"))
    emit("extract_postgres_csv", ROWS / ours, "rows/s", ref=ROWS / theirs, ratio=theirs / ours, rows=ROWS,
         seconds=round(ours, 3), psql_seconds=round(theirs, 3))


def bound_figure(dbname, workdir):
    theirs, bound = paired(5, lambda: psql_extract(dbname, workdir / "psql.csv"),
                           lambda: portal_bound_extract(dbname, workdir / "bound.csv"))
    emit("extract_postgres_csv_bound", ROWS / bound, "rows/s", ref=ROWS / theirs, ratio=theirs / bound, rows=ROWS,
         seconds=round(bound, 3), psql_seconds=round(theirs, 3))


def memory_figure(dbname, workdir):
    emit_memory_growth("extract_memory_growth", "bench.extract", dbname, workdir)


# `python -m bench extract:bound` runs one figure (bench/__main__.py).
PARTS = {"csv": csv_figure, "bound": bound_figure, "memory": memory_figure}


def main(parts=None):
    setup_django()
    dbname = database_name()
    prepare(dbname)
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-extract-"))
    try:
        for part in parts or PARTS:
            PARTS[part](dbname, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def emit_memory_growth(name, module, dbname, workdir):
    """Peak memory of a 1,000,000-row extract against a 100,000-row one, each run by `module` in its own process."""
    small = run_child(module, "--child", dbname, str(workdir / "small.csv"), "100000")
    large = run_child(module, "--child", dbname, str(workdir / "large.csv"), str(ROWS))
    emit(name, large["peak_kib"], "KiB", ref=small["peak_kib"], ratio=large["peak_kib"] / small["peak_kib"],
         rows_small=small["rows"], rows_large=large["rows"])


def run_as_child(extract):
    """`python -m <module> --child <db> <file> <rows>`: one extract; prints its rows and peak memory as JSON."""
    dbname, out_path, limit = sys.argv[2:5]
    setup_django()
    result = extract(dbname, out_path, limit=int(limit))
    print(json.dumps({"rows": result.rows, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_as_child(portal_extract)
    else:
        main()
