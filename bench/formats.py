"""extract_xlsx and extract_parquet: the 1M-row x 8-column PostgreSQL extract (bench/extract.py's table) to
.xlsx and .parquet, with their memory growth.

extract_xlsx's reference is a bare openpyxl write-only loop over the same rows (fetched the same way, by a
server-side cursor), measured in the same run; extract_parquet's is psql's `\\copy` to CSV, run alternately
with the portal's extract.
"""
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import best_of, emit, paired, run_child, setup_django
from bench.extract import QUERY, ROWS, connection, database_name, prepare, psql_extract


def portal_extract(dbname, out_path, limit=None, file_format=None):
    from runs import extract
    from runs.formats import CsvOptions

    file_format = file_format or Path(out_path).suffix.lstrip(".")
    query = QUERY + (f" LIMIT {limit}" if limit else "")
    return extract.extract_to_csv(connection(dbname).connector(), query, out_path, CsvOptions(),
                                   progress=lambda rows: None, file_format=file_format)


def openpyxl_loop(dbname, out_path):
    """What a hand-written extract to Excel does: fetch rows, append them to a write-only sheet, save."""
    import psycopg
    from openpyxl import Workbook

    from bench.extract import ADMIN

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    with psycopg.connect(**ADMIN, dbname=dbname) as conn:
        cursor = conn.cursor(name="bench")
        cursor.itersize = 5000
        cursor.execute(QUERY)
        sheet.append([column.name for column in cursor.description])
        for row in cursor:
            sheet.append(row)
    book.save(out_path)


def xlsx_figure(dbname, workdir):
    ours = best_of(2, portal_extract, dbname, workdir / "portal.xlsx")
    theirs = best_of(1, openpyxl_loop, dbname, workdir / "openpyxl.xlsx")
    emit("extract_xlsx", ROWS / ours, "rows/s", ref=ROWS / theirs, ratio=theirs / ours, rows=ROWS,
         seconds=round(ours, 3), openpyxl_seconds=round(theirs, 3))
    growth("extract_xlsx_memory_growth", dbname, workdir, "xlsx")


def parquet_figure(dbname, workdir):
    theirs, ours = paired(5, lambda: psql_extract(dbname, workdir / "psql.csv"),
                          lambda: portal_extract(dbname, workdir / "portal.parquet"))
    emit("extract_parquet", ROWS / ours, "rows/s", ref=ROWS / theirs, ratio=theirs / ours, rows=ROWS,
         seconds=round(ours, 3), psql_seconds=round(theirs, 3))
    growth("extract_parquet_memory_growth", dbname, workdir, "parquet")


# `python -m bench formats:parquet` runs one figure (bench/__main__.py); the openpyxl loop takes minutes.
PARTS = {"xlsx": xlsx_figure, "parquet": parquet_figure}


def main(parts=None):
    setup_django()
    dbname = database_name()
    prepare(dbname)
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-formats-"))
    try:
        for part in parts or PARTS:
            PARTS[part](dbname, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def growth(name, dbname, workdir, extension):
    """Peak memory of a 1,000,000-row extract against a 100,000-row one, each in its own process."""
    small = run_child("bench.formats", "--child", dbname, str(workdir / f"small.{extension}"), "100000")
    large = run_child("bench.formats", "--child", dbname, str(workdir / f"large.{extension}"), str(ROWS))
    emit(name, large["peak_kib"], "KiB", ref=small["peak_kib"], ratio=large["peak_kib"] / small["peak_kib"],
         rows_small=small["rows"], rows_large=large["rows"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        from bench.extract import run_as_child

        run_as_child(portal_extract)
    else:
        main()
