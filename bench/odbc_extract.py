"""extract_odbc_csv: the skeleton's 1,000,000-row extract through pyodbc and psqlODBC, against psql \\copy.

`extract_odbc_csv` is the path a CSV extract takes (the server composes each line, one value per row);
`extract_odbc_csv_values` reads value by value, as Excel, JSON Lines and CSV options COPY lacks do;
`extract_odbc_memory_growth` compares the peak memory of 1,000,000 and 100,000-row fast extracts.
"""
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import best_of, emit, setup_django
from bench.extract import (ADMIN, QUERY, ROWS, database_name, emit_memory_growth, prepare, psql_extract,
                           run_as_child)

DRIVER = "PostgreSQL Unicode"


def connection(dbname, fast_csv=True):
    from connections.models import Connection

    return Connection(kind="odbc", host=ADMIN["host"], port=ADMIN["port"], username=ADMIN["user"],
                      database=dbname, options={"driver": DRIVER, "fast_csv": fast_csv})


def portal_extract(dbname, out_path, fast_csv=True, limit=None):
    from runs import extract
    from runs.formats import CsvOptions

    query = QUERY + (f" LIMIT {limit}" if limit else "")
    return extract.extract_to_csv(connection(dbname, fast_csv).connector(), query, out_path, CsvOptions(),
                                   progress=lambda rows: None)


def main():
    setup_django()
    dbname = database_name()
    prepare(dbname)
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-odbc-"))
    try:
        theirs = best_of(3, psql_extract, dbname, workdir / "psql.csv")
        rows_theirs = ROWS / theirs
        for name, fast_csv, runs in (("extract_odbc_csv", True, 3), ("extract_odbc_csv_values", False, 1)):
            ours = best_of(runs, portal_extract, dbname, workdir / "portal.csv", fast_csv)
            rows_ours = ROWS / ours
            emit(name, rows_ours, "rows/s", ref=rows_theirs, ratio=rows_ours / rows_theirs, rows=ROWS,
                 seconds=round(ours, 3), psql_seconds=round(theirs, 3), driver=DRIVER)
        emit_memory_growth("extract_odbc_memory_growth", "bench.odbc_extract", dbname, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_as_child(portal_extract)
    else:
        main()
