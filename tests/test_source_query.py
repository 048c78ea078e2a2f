"""The database query source: formats, one text form per value on every engine, timeouts, statements
without rows, ODBC-only statements removed (and shown in the preview), progress, parameters."""
import datetime
import json
import time

import openpyxl
import psycopg
import pytest

from runs import sources
from tests.fixtures.sources import log_text
from tests.servers import postgres as pg

pytestmark = pytest.mark.django_db

TYPED_ROWS = [
    (1, "12.50", "2024-02-29", "2024-01-02 03:04:05", b"\x00\xff", None),
    (2, "-3.00", "1999-12-31", "2000-01-01 00:00:00", b"", ""),
    (3, None, None, None, None, 'Zoë, "quoted"'),
]
TYPED_QUERY = "SELECT id, amount, day, at, data, note FROM typed ORDER BY id"
TYPED_CSV = ('id,amount,day,at,data,note\n'
             '1,12.50,2024-02-29,2024-01-02 03:04:05,\\x00ff,\n'
             '2,-3.00,1999-12-31,2000-01-01 00:00:00,\\x,""\n'
             '3,,,,,"Zoë, ""quoted"""\n').encode()


@pytest.fixture
def pg_typed(pg_connection):
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS typed")
        conn.execute("CREATE TABLE typed (id int, amount numeric(10,2), day date, at timestamp(0), data bytea, "
                     "note text)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s)", TYPED_ROWS)
    return pg_connection


@pytest.fixture
def mariadb_typed(odbc_mariadb_connection):
    import pyodbc

    connection = odbc_mariadb_connection
    db = pyodbc.connect(connection.connector().connection_string(), autocommit=True)
    db.execute("DROP TABLE IF EXISTS typed")
    db.execute("CREATE TABLE typed (id int, amount decimal(10,2), day date, at datetime, data blob, note text)")
    for row in TYPED_ROWS:
        db.execute("INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?)", row)
    db.close()
    return connection


@pytest.fixture
def odbc_pg_typed(pg_typed, odbc_pg_connection):
    return odbc_pg_connection


@pytest.mark.parametrize("engine", ["pg_typed", "odbc_pg_typed", "mariadb_typed"])
def test_null_dates_decimals_and_binary_are_written_alike_on_every_engine(request, engine, source_task, run_task,
                                                                          dropbox):
    task = source_task(source_connection=request.getfixturevalue(engine), query=TYPED_QUERY, file_name="typed.csv",
                       destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "typed.csv").read_bytes() == TYPED_CSV


BEYOND_PYTHON_QUERY = ("SELECT 1 AS id, 'infinity'::timestamp AS valid_to, '-infinity'::date AS valid_from, "
                       "'0044-03-15 BC'::date AS ides, '10000-01-01'::date AS far, 12.5::money AS price, "
                       "'1 day 2 hours'::interval AS span, "
                       "'2024-02-29'::date AS day, '2024-06-01 12:00:00+02'::timestamptz AS at")
BEYOND_PYTHON_TEXT = ["infinity", "-infinity", "0044-03-15 BC", "10000-01-01", "$12.50", "1 day 02:00:00"]


@pytest.mark.parametrize("engine", ["pg_connection", "odbc_pg_connection"])
@pytest.mark.parametrize("file_format", ["jsonl", "xlsx", "csv"])
def test_dates_python_cannot_hold_money_and_intervals_come_as_postgresql_writes_them(request, engine, file_format,
                                                                                     source_task, run_task, dropbox):
    # Value by value (Excel, JSON Lines, CSV with CRLF lines), as the native COPY extract writes them.
    task = source_task(source_connection=request.getfixturevalue(engine), query=BEYOND_PYTHON_QUERY,
                       file_format=file_format, file_name=f"validity.{file_format}", line_terminator="crlf",
                       destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    output = dropbox.folder / f"validity.{file_format}"
    if file_format == "jsonl":
        row = json.loads(output.read_text())
        assert list(row.values()) == [1, *BEYOND_PYTHON_TEXT, "2024-02-29", "2024-06-01 10:00:00+00"]
    elif file_format == "xlsx":
        rows = list(openpyxl.load_workbook(output).active.iter_rows(values_only=True))
        assert rows[1][:7] == (1, *BEYOND_PYTHON_TEXT)
        assert rows[1][7].date() == datetime.date(2024, 2, 29)  # a finite date stays a date cell
    else:
        assert output.read_bytes().decode().split("\r\n")[1] == ",".join(
            ["1", *BEYOND_PYTHON_TEXT, "2024-02-29", "2024-06-01 10:00:00+00"])


@pytest.fixture
def people(sqlite_db):
    sqlite_db.execute("CREATE TABLE people (id INTEGER, name TEXT, amount REAL, joined TEXT);"
                      "INSERT INTO people VALUES (1, 'Ada', 12.5, '2024-01-31'), (2, 'Grace', NULL, '1999-12-31'),"
                      "(3, 'Linus', 3, '2000-01-01'), (4, 'Zoë', 0.1, '2020-02-29'), (5, 'Ken', -1, '2021-03-01');")
    return sqlite_db


def test_excel_output_is_delivered_and_opens_with_types(people, source_task, run_task, dropbox):
    task = source_task(source_connection=people, query="SELECT id, name, amount FROM people ORDER BY id",
                       file_format="xlsx", name="People export", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    sheet = openpyxl.load_workbook(dropbox.folder / "People_export.xlsx").active
    assert list(sheet.iter_rows(values_only=True))[:3] == [("id", "name", "amount"), (1, "Ada", 12.5),
                                                           (2, "Grace", None)]
    assert run.files.get().name == "People_export.xlsx" and run.rows == 5


def test_json_lines_output(people, source_task, run_task, dropbox):
    task = source_task(source_connection=people, query="SELECT id, name, amount FROM people WHERE id < 3",
                       file_format="jsonl", file_name="people.jsonl", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    lines = (dropbox.folder / "people.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": 1, "name": "Ada", "amount": 12.5},
                                                    {"id": 2, "name": "Grace", "amount": None}]


def test_csv_options_of_the_task_shape_the_file(people, source_task, run_task, dropbox):
    task = source_task(source_connection=people, query="SELECT id, name FROM people WHERE id IN (1, 4)",
                       csv_delimiter="\\t", csv_quoting="all", line_terminator="crlf", encoding="cp1252",
                       include_headers=False, file_name="people.txt", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "people.txt").read_bytes() == '"1"\t"Ada"\r\n"4"\t"Zoë"\r\n'.encode("cp1252")


def test_the_row_count_is_logged_every_n_rows_and_at_the_end(people, source_task, run_task, settings):
    settings.ETL_PROGRESS_EVERY_ROWS = 2
    task = source_task(source_connection=people, query="SELECT * FROM people")
    run = run_task(task)
    progress = [line for line in log_text(run).splitlines() if "rows written so far" in line]
    assert progress == ["2 rows written so far", "4 rows written so far"]
    assert "Query finished: 5 rows, 4 columns" in log_text(run) and run.rows == 5


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_statement_without_result_set_is_a_clear_outcome(engine, people, pg_connection, source_task, run_task,
                                                           dropbox):
    if engine == "postgresql":
        host, port, user = pg.dsn_parts()
        with psycopg.connect(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS people; CREATE TABLE people (id int, amount float8);"
                       "INSERT INTO people VALUES (1, 1), (2, 2), (3, 3)")
    source = people if engine == "sqlite" else pg_connection
    task = source_task(source_connection=source, query="UPDATE people SET amount = 0 WHERE id < 3",
                       destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert "The statement ran and returned no result set (2 rows affected), so there is no file to deliver" \
        in log_text(run)
    assert not run.files.exists() and not list(dropbox.folder.iterdir())


@pytest.mark.parametrize("engine, query, message", [
    ("sqlite", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
     "Query cancelled: it ran past the connection's query timeout"),
    ("postgresql", "SELECT pg_sleep(30)", "Query cancelled: it ran past the connection's query timeout"),
    ("odbc_postgresql", "SELECT pg_sleep(30)", "Query cancelled: it ran past the connection's query timeout"),
    ("odbc_mariadb", "SELECT SLEEP(30)", "Query cancelled: it ran past the connection's query timeout"),
])
def test_the_query_timeout_of_the_connection_works_on_every_engine(request, engine, query, message, source_task,
                                                                   run_task):
    source = request.getfixturevalue({"sqlite": "sqlite_db", "postgresql": "pg_connection",
                                      "odbc_postgresql": "odbc_pg_connection",
                                      "odbc_mariadb": "odbc_mariadb_connection"}[engine])
    source.options = {**source.options, "query_timeout": 1}
    source.save()
    task = source_task(source_connection=source, query=query)
    started = time.monotonic()
    run = run_task(task)
    assert time.monotonic() - started < 15
    assert run.status == "failed" and run.error.startswith(message), run.error


ODBC_SCRIPT = """USE [shop];
GO
SELECT id, amount
FROM typed
WHERE id < {limit}
ORDER BY id
GO
"""


def test_odbc_only_statements_are_removed_and_the_preview_shows_the_query_as_run(
        mariadb_typed, source_task, run_task, dropbox, project):
    from projects.models import Parameter

    Parameter.objects.create(project=project, key="limit", value="3")
    task = source_task(source_connection=mariadb_typed, query=ODBC_SCRIPT, file_name="shop.csv",
                       destinations=[(dropbox, "")])
    original, as_run = sources.preview_query(task, {"limit": "3"})
    assert original == ODBC_SCRIPT
    assert as_run == "SELECT id, amount\nFROM typed\nWHERE id < '3'\nORDER BY id;"

    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert "Removed what an ODBC source cannot run: USE [shop];, GO, GO" in log_text(run)
    assert (dropbox.folder / "shop.csv").read_text() == "id,amount\n1,12.50\n2,-3.00\n"
    assert run.query_text == "SELECT id, amount\nFROM typed\nWHERE id < '3'\nORDER BY id;"


def test_the_preview_of_a_native_source_keeps_the_text(pg_connection, source_task):
    task = source_task(source_connection=pg_connection, query="SELECT 1 -- GO\nGO")
    assert sources.preview_query(task, {}) == ("SELECT 1 -- GO\nGO", "SELECT 1 -- GO\nGO")


def test_parameters_are_bound_and_the_run_records_the_query_as_run(people, source_task, run_task, project,
                                                                   dropbox):
    from projects.models import Parameter

    Parameter.objects.create(project=project, key="who", value="Ada")
    task = source_task(source_connection=people, query="SELECT id FROM people WHERE name = {who}",
                       file_name="who.csv", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "who.csv").read_text() == "id\n1\n"
    assert run.query_text == "SELECT id FROM people WHERE name = 'Ada'"
