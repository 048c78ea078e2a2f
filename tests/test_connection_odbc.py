"""ODBC against real servers: PostgreSQL through psqlODBC and MariaDB through MariaDB Connector/ODBC."""
import socket
import time

import pyodbc
import pytest

from connections.models import Connection
from connections.protocols.base import ConnectorError
from connections.protocols.odbc import attribute_names, odbc_value
from runs.extract import extract_to_csv
from runs.formats import CsvOptions
from tests.servers import postgres as pg
from tests.servers.common import free_port, unavailable

pytestmark = pytest.mark.django_db


def rows_of(result, size):
    batches = list(result.batches(size))
    return [len(batch) for batch in batches], [row for batch in batches for row in batch]


@pytest.fixture(params=["postgresql", "mariadb"])
def odbc_connection(request):
    name = "odbc_pg_connection" if request.param == "postgresql" else "odbc_mariadb_connection"
    return request.getfixturevalue(name)


def test_round_trip_streams_rows_in_batches(odbc_connection):
    database = odbc_connection.connector()
    with database.execute("CREATE TABLE round_trip (id integer, name varchar(20))") as result:
        assert result.columns is None
    with database.execute("INSERT INTO round_trip VALUES (1, 'ann'), (2, 'bob'), (3, NULL), (4, 'dé')") as result:
        assert (result.columns, result.rowcount) == (None, 4)
    with database.execute("UPDATE round_trip SET name = 'zoë' WHERE id > ?", [2]) as result:
        assert (result.columns, result.rowcount) == (None, 2)
    with database.execute("SELECT id, name AS who FROM round_trip ORDER BY id") as result:
        assert result.columns == ["id", "who"]
        sizes, rows = rows_of(result, 3)
    assert sizes == [3, 1]
    assert rows == [(1, "ann"), (2, "bob"), (3, "zoë"), (4, "zoë")]
    with database.execute("DROP TABLE round_trip") as result:
        assert result.columns is None


def test_psqlodbc_streams_rows_before_the_query_has_finished(odbc_pg_connection):
    # The last row takes 2 s to produce: rows that arrive sooner came through psqlODBC's cursor, not
    # from a result the driver read into memory in full first.
    query = "SELECT g FROM generate_series(1, 8000) g WHERE g < 8000 OR pg_sleep(2) IS NOT NULL"
    started = time.monotonic()
    with odbc_pg_connection.connector().execute(query) as result:
        first = next(result.batches(100))
        first_after = time.monotonic() - started
        total = len(first) + sum(len(batch) for batch in result.batches(100))
    assert first[0] == (1,) and total == 8000
    assert first_after < 1.5 < time.monotonic() - started


def test_connection_test_names_the_server_and_driver(odbc_pg_connection, odbc_mariadb_connection):
    assert odbc_pg_connection.connector().test().startswith("Connected to PostgreSQL 15")
    assert "through psqlodbcw.so" in odbc_pg_connection.connector().test()
    assert odbc_mariadb_connection.connector().test().startswith("Connected to MariaDB")


@pytest.mark.parametrize("flavour, sleep", [("postgresql", "SELECT pg_sleep(5)"), ("mariadb", "SELECT SLEEP(5)")])
def test_the_query_timeout_cancels_a_long_query(request, flavour, sleep):
    connection = request.getfixturevalue("odbc_pg_connection" if flavour == "postgresql" else "odbc_mariadb_connection")
    connection.options["query_timeout"] = 1
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        with connection.connector().execute(sleep) as result:
            list(result.batches())
    assert time.monotonic() - started < 3
    assert caught.value.step == "query"
    assert caught.value.message == "Query cancelled: it ran past the connection's query timeout (1 s)"


def test_a_query_error_shows_the_database_message(odbc_pg_connection, odbc_mariadb_connection):
    with pytest.raises(ConnectorError) as caught:
        odbc_pg_connection.connector().execute("SELECT no_such_column")
    assert (caught.value.step, caught.value.message) == (
        "query", 'PostgreSQL error: column "no_such_column" does not exist')
    with pytest.raises(ConnectorError) as caught:
        odbc_mariadb_connection.connector().execute("SELECT no_such_column")
    assert (caught.value.step, caught.value.message) == (
        "query", "MariaDB error: Unknown column 'no_such_column' in 'SELECT'")


def test_a_wrong_password_fails_authentication_without_showing_it(odbc_mariadb_connection):
    odbc_mariadb_connection.secrets = {"password": "Wrong;Pa55{word}"}
    with pytest.raises(ConnectorError) as caught:
        odbc_mariadb_connection.connector().test()
    assert caught.value.step == "authentication"
    assert caught.value.message.startswith(f"Authentication failed for user {odbc_mariadb_connection.username!r}")
    assert "Access denied" in caught.value.message
    assert "Pa55" not in caught.value.message


def test_an_unknown_driver_lists_the_installed_ones(organization):
    connection = Connection(organization=organization, kind="odbc", host="127.0.0.1", port=5432,
                            options={"driver": "No Such Driver"}, secrets={"password": "hush-hush"})
    with pytest.raises(ConnectorError) as caught:
        connection.connector().test()
    assert caught.value.step == "settings"
    assert caught.value.message.startswith("The ODBC driver 'No Such Driver' is not installed on this server.")
    assert "PostgreSQL Unicode" in caught.value.message and "MariaDB Unicode" in caught.value.message


def test_an_unknown_dsn_and_missing_settings_are_settings_errors(organization):
    connection = Connection(organization=organization, kind="odbc", options={"dsn": "nowhere"})
    with pytest.raises(ConnectorError, match="The data source 'nowhere' is not defined") as caught:
        connection.connector().test()
    assert caught.value.step == "settings"
    with pytest.raises(ConnectorError, match="Set an ODBC driver name or a data source name") as caught:
        Connection(organization=organization, kind="odbc").connector().test()
    assert caught.value.step == "settings"


@pytest.mark.parametrize("driver", ["PostgreSQL Unicode", "MariaDB Unicode"])
def test_unreachable_servers_say_which_step_failed(organization, driver):
    def attempt(host, port, timeout=5):
        connection = Connection(organization=organization, kind="odbc", host=host, port=port, username="x",
                                options={"driver": driver, "timeout": timeout}, secrets={"password": "x-secret"})
        with pytest.raises(ConnectorError) as caught:
            connection.connector().test()
        assert "x-secret" not in caught.value.message
        return caught.value.step

    assert attempt("127.0.0.1", free_port()) == "refused"
    assert attempt("no-such-host.invalid", 5432) == "name resolution"
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        assert attempt("127.0.0.1", silent.getsockname()[1], timeout=1) == "timeout"
        assert time.monotonic() - started < 4


def test_connection_string_values_are_escaped():
    assert odbc_value("plain") == "plain"
    assert odbc_value("a;b}c{") == "{a;b}}c{}"
    assert odbc_value("") == "{}"
    assert attribute_names("A=1; b={x;y}}z};C=;=d") == {"a", "b", "c"}


def test_user_extra_attributes_win_over_driver_defaults(odbc_pg_connection):
    odbc_pg_connection.options["extra"] = "Fetch=10;ApplicationName={etl;odbc}"
    text = odbc_pg_connection.connector().connection_string()
    assert text.count(";Fetch=") == 1 and text.endswith(";Fetch=10;ApplicationName={etl;odbc}")
    assert "UseDeclareFetch=1" in text and "BoolsAsChar=0" in text


@pytest.fixture
def odbc_typed_table(pg_connection):
    """The typed table of test_pipeline_steps, under its own name."""
    pg.create_typed_table(pg_connection.database, "odbc_typed")
    return pg_connection


@pytest.mark.parametrize("query, odbc_ending", [
    ("SELECT * FROM odbc_typed ORDER BY i NULLS LAST", ""),
    # Repeated column names, a trailing comment or semicolon: the types are still described.
    ("SELECT i, tz, b, tz FROM odbc_typed ORDER BY i NULLS LAST", "\n-- repeated names"),
    ("SELECT i, tz, b, tz FROM odbc_typed ORDER BY i NULLS LAST", ";"),
])
def test_odbc_and_native_postgresql_write_identical_csv(odbc_typed_table, odbc_pg_connection, tmp_path, query,
                                                        odbc_ending):
    native, odbc = tmp_path / "native.csv", tmp_path / "odbc.csv"
    extract_to_csv(odbc_typed_table.connector(), query, native, CsvOptions(), progress=lambda rows: None)
    extract = extract_to_csv(odbc_pg_connection.connector(), query + odbc_ending, odbc, CsvOptions(),
                                      progress=lambda rows: None)
    assert extract.rows == 3
    assert odbc.read_bytes() == native.read_bytes()
    if "*" in query:
        assert odbc.read_text().splitlines()[1:] == [
            '1,true,12.50,0.1,2024-02-29,2024-01-02 03:04:05.12,2024-01-02 03:04:05+00,\\x00ff,'
            '"{""a"": [1, ""é""]}",12345678-1234-5678-1234-567812345678,plain',
            '2,false,-3,1e+20,1999-12-31,2000-01-01 00:00:00,2024-06-01 10:00:00.5+00,\\x,[],,""',
            ',,,,,,,,,,',
        ]


def test_psqlodbc_ansi_driver_failure_is_explained(odbc_pg_connection):
    if "PostgreSQL ANSI" not in pyodbc.drivers():
        unavailable("psqlODBC ANSI driver not installed")
    odbc_pg_connection.options["driver"] = "PostgreSQL ANSI"
    with pytest.raises(ConnectorError, match="use the PostgreSQL Unicode driver") as caught:
        with odbc_pg_connection.connector().execute("SELECT 'x'::text") as result:
            list(result.batches())
    assert caught.value.step == "query"
