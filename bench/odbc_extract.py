"""extract_odbc_csv: the skeleton's 1,000,000-row extract through pyodbc and psqlODBC, against psql \\copy."""
import shutil
import tempfile
from pathlib import Path

from bench.common import best_of, emit, setup_django
from bench.extract import ADMIN, QUERY, ROWS, database_name, prepare, psql_extract

DRIVER = "PostgreSQL Unicode"


def connection(dbname):
    from connections.models import Connection

    return Connection(kind="odbc", host=ADMIN["host"], port=ADMIN["port"], username=ADMIN["user"],
                      database=dbname, options={"driver": DRIVER})


def portal_extract(dbname, out_path):
    from runs import pipeline
    from runs.formats import CsvOptions

    return pipeline.extract_to_csv(connection(dbname).connector(), QUERY, out_path, CsvOptions(),
                                   progress=lambda rows: None)


def main():
    setup_django()
    dbname = database_name()
    prepare(dbname)
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-odbc-"))
    try:
        ours = best_of(2, portal_extract, dbname, workdir / "portal.csv")
        theirs = best_of(3, psql_extract, dbname, workdir / "psql.csv")
        rows_ours, rows_theirs = ROWS / ours, ROWS / theirs
        emit("extract_odbc_csv", rows_ours, "rows/s", ref=rows_theirs, ratio=rows_ours / rows_theirs, rows=ROWS,
             seconds=round(ours, 3), psql_seconds=round(theirs, 3), driver=DRIVER)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
