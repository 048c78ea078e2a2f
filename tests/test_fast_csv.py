"""CSV lines the server composes: PostgreSQL through ODBC (pyodbc fetches one value per row instead of one per
column), and queries with bound parameters on both connectors (COPY cannot take parameters).

Their bytes must be the native connector's COPY bytes for every option COPY takes, including values psqlODBC
converts on its own terms (infinite timestamps, BC dates, money) and intervals, arrays, long text.
"""
import datetime
import time
import uuid

import psycopg
import pytest

from connections.models import Connection
from connections.protocols.base import ConnectorError
from runs.errors import PipelineError
from runs.extract import NoResultSet, extract_to_csv
from runs.formats import CsvOptions
from tests.servers import postgres as pg

pytestmark = pytest.mark.django_db

LONG_TEXT = "long, " + "x" * 100_000
TRICKY_ROWS = [
    (1, "a,b", "semi;colon", "1234.5", "infinity", "0044-03-15 BC", "{1,NULL,3}", "1 day 02:00:00",
     '{"k": "v,\\"q\\""}'),
    (2, "line\nbreak", "tab\there", "-1", "-infinity", "2024-02-29", "{}", "-3 mons", "[]"),
    (3, "cr\rhere", "pipe|here", "0", "2024-01-01 00:00:00.000001", "1999-12-31", "{{1,2},{3,4}}", "0", "null"),
    (4, "", 'say "hi"', None, None, None, None, None, None),
    (5, None, None, None, None, None, None, None, None),
    (6, "\\.", "plain", "0.01", "2000-01-01", "2000-01-01", "{}", "1 sec", "1"),
    (7, "zoë €", "café", "7", "2000-01-01", "2000-01-01", "{7}", "7 days", '"é"'),
    (8, LONG_TEXT, "long", "8", "2000-01-01", "2000-01-01", "{8}", "8 hours", "8"),
]
QUERY = "SELECT * FROM tricky ORDER BY id"


@pytest.fixture
def tricky(pg_connection, odbc_pg_connection):
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tricky")
        conn.execute("CREATE TABLE tricky (id int, t text, v varchar(30), m money, ts timestamp, d date, a int[], "
                     "iv interval, js json)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO tricky VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", TRICKY_ROWS)
    return pg_connection, odbc_pg_connection


def extract_both(tricky, tmp_path, query, options):
    native, odbc = tricky
    native_path, odbc_path = tmp_path / "native.csv", tmp_path / "odbc.csv"
    extract_to_csv(native.connector(), query, native_path, options, progress=lambda rows: None)
    extract = extract_to_csv(odbc.connector(), query, odbc_path, options, progress=lambda rows: None)
    return extract, native_path.read_bytes(), odbc_path.read_bytes()


@pytest.mark.parametrize("quoting", ["minimal", "all"])
@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_odbc_writes_the_native_copy_bytes_for_every_copy_option(tricky, tmp_path, delimiter, quoting):
    extract, native, odbc = extract_both(tricky, tmp_path, QUERY, CsvOptions(delimiter=delimiter, quoting=quoting))
    assert extract.rows == len(TRICKY_ROWS)
    assert odbc == native
    text = odbc.decode()
    # Values psqlODBC would convert on its own terms come out as PostgreSQL writes them.
    for value in ("infinity", "0044-03-15 BC", "$1,234.50", "{{1,2},{3,4}}", "1 day 02:00:00", LONG_TEXT):
        assert value in text
    if quoting == "minimal":  # an empty string is quoted, NULL is an empty field
        assert f'\n4{delimiter}""{delimiter}"say ""hi"""{delimiter * 6}\n' in text
        assert f"\n5{delimiter * 8}\n" in text


@pytest.mark.parametrize("encoding, prefix", [("utf-8-sig", b"\xef\xbb\xbf"), ("cp1252", b"")])
def test_odbc_encodings_match_copy(tricky, tmp_path, encoding, prefix):
    query = "SELECT id, t, v FROM tricky WHERE id = 7"
    extract, native, odbc = extract_both(tricky, tmp_path, query, CsvOptions(encoding=encoding))
    assert odbc == native == prefix + "id,t,v\n7,zoë €,café\n".encode(encoding.removesuffix("-sig"))


def test_a_lone_backslash_dot_in_a_one_column_row_is_quoted_as_copy_does(tricky, tmp_path):
    extract, native, odbc = extract_both(tricky, tmp_path, "SELECT t FROM tricky WHERE id IN (4, 5, 6) ORDER BY id",
                                         CsvOptions())
    assert odbc == native == b't\n""\n\n"\\."\n'


@pytest.fixture
def read_only_odbc(tricky):
    """An ODBC connection as a reporting user whose every transaction is read-only."""
    native, odbc = tricky
    role = f"etl_reader_{uuid.uuid4().hex[:8]}"
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=native.database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        conn.execute(f"GRANT SELECT ON tricky TO {role}")
    yield Connection.objects.create(organization=odbc.organization, name="Reporting via ODBC", kind="odbc",
                                    host=odbc.host, port=odbc.port, username=role, database=odbc.database,
                                    options=dict(odbc.options))
    with psycopg.connect(host=host, port=port, user=user, dbname=native.database, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_a_read_only_reporting_user_gets_the_same_bytes(tricky, read_only_odbc, tmp_path):
    native, _ = tricky
    extract, native_bytes, odbc_bytes = extract_both((native, read_only_odbc), tmp_path, QUERY, CsvOptions())
    assert extract.rows == len(TRICKY_ROWS) and odbc_bytes == native_bytes
    assert b"infinity" in odbc_bytes  # without the column types, psqlODBC would have written 9999-12-31


def test_a_character_the_encoding_lacks_is_a_clear_error(tricky, tmp_path):
    _, odbc = tricky
    (tmp_path / "out").mkdir()
    with pytest.raises(PipelineError, match=r"A value holds 'ő' \(U\+0151\), which cp1252 cannot hold"):
        extract_to_csv(odbc.connector(), "SELECT 'Erdős' AS name", tmp_path / "out" / "out.csv",
                                CsvOptions(encoding="cp1252"), progress=lambda rows: None)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("engine, where, params", [
    ("odbc", "g < 12000", None), ("odbc", "g < ?", [12000]), ("native", "g < %s", [12000])])
def test_rows_stream_to_the_file_before_the_query_has_finished(pg_connection, odbc_pg_connection, tmp_path, engine,
                                                               where, params):
    # The last row takes 2 s to produce: progress reported sooner means rows came through the cursor.
    database = (odbc_pg_connection if engine == "odbc" else pg_connection).connector()
    query = f"SELECT g, 'row ' || g AS label FROM generate_series(1, 12000) g WHERE {where} OR pg_sleep(2) IS NOT NULL"
    reports, started = [], time.monotonic()
    extract = extract_to_csv(database, query, tmp_path / "out.csv", CsvOptions(),
                                      progress=lambda rows: reports.append((rows, time.monotonic() - started)),
                                      every=5000, params=params)
    assert extract.rows == 12000
    assert [rows for rows, _ in reports] == [5000, 10000]
    assert reports[0][1] < 1.5 < time.monotonic() - started
    assert (tmp_path / "out.csv").read_text().splitlines()[-1] == "12000,row 12000"


def test_an_error_while_rows_stream_leaves_no_file(odbc_pg_connection, tmp_path):
    query = "SELECT 1 / (9000 - g) FROM generate_series(1, 10000) g"
    (tmp_path / "out").mkdir()
    with pytest.raises(ConnectorError) as caught:
        extract_to_csv(odbc_pg_connection.connector(), query, tmp_path / "out" / "out.csv", CsvOptions(),
                                progress=lambda rows: None)
    assert caught.value.message == "PostgreSQL error: division by zero"
    assert list((tmp_path / "out").iterdir()) == []


def test_the_query_timeout_stops_a_fast_extract(odbc_pg_connection, tmp_path):
    odbc_pg_connection.options["query_timeout"] = 1
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        extract_to_csv(odbc_pg_connection.connector(), "SELECT pg_sleep(5)", tmp_path / "out.csv",
                                CsvOptions(), progress=lambda rows: None)
    assert time.monotonic() - started < 3
    assert caught.value.message == "Query cancelled: it ran past the connection's query timeout (1 s)"


def test_statements_without_rows_and_scripts_fall_back_to_the_value_path(odbc_pg_connection, tmp_path):
    database = odbc_pg_connection.connector()
    with database.execute("CREATE TABLE fallback (id int)"):
        pass
    with pytest.raises(NoResultSet) as caught:
        extract_to_csv(database, "INSERT INTO fallback VALUES (1), (2)", tmp_path / "out.csv", CsvOptions(),
                                progress=lambda rows: None)
    assert caught.value.rowcount == 2
    extract = extract_to_csv(database, "SELECT id FROM fallback ORDER BY id", tmp_path / "out.csv",
                                      CsvOptions(), progress=lambda rows: None)
    assert (extract.rows, (tmp_path / "out.csv").read_text()) == (2, "id\n1\n2\n")


def test_the_fast_path_is_taken_only_where_it_writes_copy_bytes(odbc_pg_connection, odbc_mariadb_connection):
    pg_database, mariadb = odbc_pg_connection.connector(), odbc_mariadb_connection.connector()
    assert pg_database.can_copy_csv(CsvOptions())
    assert pg_database.can_copy_csv(CsvOptions(delimiter="\t", quoting="all", encoding="cp1252"))
    # Options COPY does not take go value by value through the portable writer.
    assert not pg_database.can_copy_csv(CsvOptions(line_terminator="\r\n"))
    assert not pg_database.can_copy_csv(CsvOptions(quoting="nonnumeric"))
    assert not mariadb.can_copy_csv(CsvOptions())
    odbc_pg_connection.options["fast_csv"] = False
    assert not odbc_pg_connection.connector().can_copy_csv(CsvOptions())


def test_with_fast_csv_off_values_read_one_by_one_give_the_same_bytes(tricky, tmp_path):
    native, odbc = tricky
    odbc.options["fast_csv"] = False
    assert not odbc.connector().can_copy_csv(CsvOptions())
    extract, native_bytes, odbc_bytes = extract_both(tricky, tmp_path, QUERY, CsvOptions())
    assert extract.rows == len(TRICKY_ROWS) and odbc_bytes == native_bytes


@pytest.mark.parametrize("engine, placeholder", [("native", "%s"), ("odbc", "?")])
def test_bound_parameters_keep_the_fast_path_and_its_bytes(tricky, tmp_path, engine, placeholder):
    native, odbc = tricky
    database = (native if engine == "native" else odbc).connector()
    options = CsvOptions(delimiter=";", quoting="all")
    assert database.can_copy_csv(options)
    copied, bound = tmp_path / "copied.csv", tmp_path / "bound.csv"
    extract_to_csv(native.connector(), "SELECT * FROM tricky WHERE id < 7 AND t <> 'x' ORDER BY id",
                            copied, options, progress=lambda rows: None)
    extract = extract_to_csv(
        database, f"SELECT * FROM tricky WHERE id < {placeholder} AND t <> {placeholder} ORDER BY id", bound,
        options, progress=lambda rows: None, params=[7, "x"])
    assert extract.rows == 5  # ids 1, 2, 3, 4 and 6: a NULL t is not <> 'x'
    assert b"infinity" in bound.read_bytes()
    assert bound.read_bytes() == copied.read_bytes()


@pytest.mark.parametrize("engine, placeholder", [("native", "%s"), ("odbc", "?")])
def test_a_bound_statement_without_rows_still_runs_once_and_says_so(tricky, tmp_path, engine, placeholder):
    native, odbc = tricky
    database = (native if engine == "native" else odbc).connector()
    with pytest.raises(NoResultSet) as caught:
        extract_to_csv(database, f"UPDATE tricky SET v = 'seen' WHERE id < {placeholder}",
                                tmp_path / "out.csv", CsvOptions(), progress=lambda rows: None, params=[3])
    assert caught.value.rowcount == 2
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=native.database) as conn:
        assert conn.execute("SELECT count(*) FROM tricky WHERE v = 'seen'").fetchone()[0] == 2


def test_bound_values_reach_copy_as_values_never_as_sql_text(tricky, tmp_path):
    """The native connector binds each value into a session setting the COPY statement reads (COPY takes no
    parameters): a hostile value stays a value, and a date or number keeps its type."""
    native, _ = tricky
    hostile = "x'; DROP TABLE tricky; --"
    extract = extract_to_csv(
        native.connector(), "SELECT id, t FROM tricky WHERE t = %s OR (id > %s AND d < %s) OR t LIKE '%%é%%' "
                            "ORDER BY id", tmp_path / "out.csv", CsvOptions(), progress=lambda rows: None,
        params=[hostile, 5, datetime.date(2000, 1, 2)])
    assert (tmp_path / "out.csv").read_text() == 'id,t\n6,\\.\n7,zoë €\n' + f'8,"{LONG_TEXT}"\n'
    assert extract.rows == 3
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=native.database) as conn:
        assert conn.execute("SELECT count(*) FROM tricky").fetchone()[0] == len(TRICKY_ROWS)
