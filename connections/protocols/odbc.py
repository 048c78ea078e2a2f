"""Any database with an ODBC driver, through pyodbc; tuned for psqlODBC and MariaDB Connector/ODBC.

Rows are fetched in batches (fetchmany) and, with psqlODBC, also streamed from the server through a
cursor (UseDeclareFetch): without it the driver reads the whole result into memory first. MariaDB
Connector/ODBC 3.1 always buffers the whole result client-side; 3.2+ streams with STREAMRS=1.

CSV extracts from PostgreSQL, with the options COPY supports, take a fast path: the server writes each
CSV line by COPY's rules (see `csv_lines_query`) and pyodbc fetches one value per row instead of one
per column, 8x fewer driver calls for an 8-column table. Its bytes are the native connector's COPY bytes.

Everything else (Excel, JSON Lines, other CSV options, other databases) reads value by value. Values then
come out as they do through the native PostgreSQL connector: every session runs in UTC, psqlODBC booleans
are real booleans, and dates, timestamps and money are read as the server's text and parsed here (see
SERVER_TEXT_PARSERS), so 'infinity', BC dates and money keep their PostgreSQL form.

A numeric column's precision and scale (Parquet writes numeric(p,s) as decimal(p,s)): psqlODBC reports
the declared ones for numeric(p,s), but for plain `numeric` it reports made-up ones (28 and 6, or the
scale of the first rows), the same as a real numeric(28,6). Value-by-value extracts therefore connect with
`NumericAs=12`: psqlODBC then declares plain numeric as text (its exact text, parsed into a Decimal here)
and only numeric(p,s) as a decimal, so the declared precision and scale can be trusted.
"""
import datetime
import decimal
import math
import re
import threading

try:
    import pyodbc
except ImportError:  # its wheel needs unixODBC's libodbc.so.2; the rest of the portal works without it
    pyodbc = None

from django import forms

from connections.protocols.base import (
    ConnectorError, Database, QueryResult, QuerySample, password_secret, query_timeout_option, value_type,
)
from connections.protocols.postgres import copy_supports, csv_lines_query, strip_statement, write_csv_lines
from connections.protocols.column_types import pg_column_type, pg_type_name, python_column_type
from connections.protocols.registry import register

DEFAULT_QUERY_TIMEOUT = 90 * 60
# Rows psqlODBC fetches per round trip through its server-side cursor.
FETCH_ROWS = 5000
# A dead network mid-query would otherwise block a MariaDB read forever; the server stops the query first.
READ_TIMEOUT_MARGIN = 60
PG_BOOL, PG_MONEY, PG_DATE, PG_TIMESTAMP, PG_TIMESTAMPTZ, PG_NUMERIC = 16, 790, 1082, 1114, 1184, 1700
SQL_VARCHAR = 12
# psqlODBC converts these on its own terms: 'infinity' becomes 9999-12-31, '-infinity' today's date, a BC
# date loses its era, money becomes a float. Read value by value, they come as the server's text and are
# parsed here (money stays text, as psycopg gives it).
SERVER_TEXT_PARSERS = {PG_DATE: datetime.date.fromisoformat, PG_TIMESTAMP: datetime.datetime.fromisoformat,
                       PG_TIMESTAMPTZ: datetime.datetime.fromisoformat, PG_MONEY: None}
NEEDS_BRACES = re.compile(r"[\[\]{}(),;?*=!@\s]")


def odbc_value(value):
    """One connection-string value, braced when it holds a character the ODBC grammar gives a meaning to."""
    text = str(value)
    if text and not NEEDS_BRACES.search(text):
        return text
    return "{" + text.replace("}", "}}") + "}"


def attribute_names(text):
    """Lower-cased keys of a connection string fragment such as `A=1;B={x;y}}z}`."""
    names, position = set(), 0
    while (equals := text.find("=", position)) >= 0:
        names.add(text[position:equals].strip().lower())
        position = equals + 1
        if text[position:position + 1] == "{":
            closing = position + 1
            while (closing := text.find("}", closing)) >= 0 and text[closing + 1:closing + 2] == "}":
                closing += 2
            position = len(text) if closing < 0 else closing
        position = text.find(";", position)
        if position < 0:
            break
        position += 1
    return names - {""}


def driver_family(driver_name):
    lowered = (driver_name or "").lower()
    if "postgres" in lowered or "psqlodbc" in lowered:
        return "postgresql"
    if "maria" in lowered or "mysql" in lowered or "maodbc" in lowered:
        return "mysql"
    return ""


def clean_message(text):
    """The database's own words from a pyodbc error, without SQLSTATE, driver tags and call names."""
    text = str(text)
    text = re.sub(r"^\[[0-9A-Z]{5}\]\s*", "", text)
    text = re.sub(r"(\s*\(-?\d+\))?\s*\(SQL\w+\)\s*$", "", text)
    text = re.sub(r"^(\[[^\]]*\])+\s*", "", text)
    text = re.sub(r";\s*Error while (executing the query|fetching the next result)\s*$", "", text)
    text = re.sub(r"^(ERROR|FATAL):\s+", "", text.strip())
    return " ".join(text.split())


def sqlstate_and_text(exc):
    if len(exc.args) >= 2:
        return str(exc.args[0]), str(exc.args[1])
    return "", str(exc.args[0]) if exc.args else type(exc).__name__


# Per server, the statement that makes every later transaction of the session read-only.
READ_ONLY_SESSION = {"PostgreSQL": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                     "MariaDB": "SET SESSION TRANSACTION READ ONLY", "MySQL": "SET SESSION TRANSACTION READ ONLY"}


class OdbcResult(QueryResult):
    def __init__(self, connector, connection, cursor, dbms, fix_row=None, names=None, oids=None,
                 numeric_declared=False):
        self._oids = oids
        self._numeric_declared = numeric_declared
        self._connector = connector
        self._connection = connection
        self._cursor = cursor
        self._dbms = dbms
        self._fix_row = fix_row
        self.columns = names or ([column[0] for column in cursor.description] if cursor.description else None)
        self.rowcount = cursor.rowcount

    @property
    def type_names(self):
        description = self._cursor.description or ()
        if self._oids and len(self._oids) == len(description):
            return [pg_type_name(oid) for oid in self._oids]
        return [column[1].__name__ for column in description]

    @property
    def types(self):
        """The columns' declared types (connections.protocols.column_types.ColumnType); None where the values
        must tell. Through psqlODBC, by PostgreSQL type; numeric(p,s) with the precision and scale the driver
        declares when NumericAs tells it from plain numeric (see the module docstring), else as text."""
        description = self._cursor.description or ()
        if self._oids and len(self._oids) == len(description):
            return [pg_column_type(oid, column[4], column[5])
                    if oid == PG_NUMERIC and self._numeric_declared and column[1] is decimal.Decimal
                    else pg_column_type(oid) for oid, column in zip(self._oids, description)]
        return [python_column_type(column[1], column[4], column[5]) for column in description]

    def batches(self, size=5000):
        fix_row = self._fix_row or tuple
        try:
            while rows := self._cursor.fetchmany(size):
                yield [fix_row(row) for row in rows]
        except pyodbc.Error as exc:
            raise self._connector.query_error(exc, self._dbms) from None

    def close(self):
        self._connector.release(self._connection)


def value_query(statement, type_oids):
    """The statement with its date, timestamp and money columns read as the server's text (see
    SERVER_TEXT_PARSERS); None when it has none."""
    if not any(oid in SERVER_TEXT_PARSERS for oid in type_oids):
        return None
    aliases = [f"c{index}" for index in range(len(type_oids))]
    select = ", ".join(f"{alias}::text" if oid in SERVER_TEXT_PARSERS else alias
                       for alias, oid in zip(aliases, type_oids))
    # The newline ends a trailing "-- comment" in the user's statement before the wrapper's ")".
    return f"SELECT {select} FROM ({statement}\n) AS etl_portal_q({', '.join(aliases)})"


def _numeric_text(text):
    return decimal.Decimal(text)  # exact: 'NaN', 'Infinity' and every digit PostgreSQL wrote


def row_fixer(types):
    """Parse the text of dates and timestamps read by `value_query` (text stays where Python cannot hold the
    value) and of plain numerics (NumericAs), and turn psqlODBC's '1'/'0' booleans into booleans."""
    parsed = [(index, SERVER_TEXT_PARSERS[oid]) for index, oid in enumerate(types) if SERVER_TEXT_PARSERS.get(oid)]
    parsed += [(index, _numeric_text) for index, oid in enumerate(types) if oid == PG_NUMERIC]
    booleans = [index for index, oid in enumerate(types) if oid == PG_BOOL]
    if not parsed and not booleans:
        return None

    def fix(row):
        values = list(row)
        for index, parse in parsed:
            value = values[index]
            if type(value) is str:
                try:
                    values[index] = parse(value)
                except ValueError:
                    pass  # 'infinity', a BC date, a year after 9999: PostgreSQL's text, as COPY writes it
        for index in booleans:
            value = values[index]
            if isinstance(value, str):
                values[index] = {"1": True, "0": False}.get(value, value)
        return tuple(values)

    return fix


@register
class OdbcDatabase(Database):
    kind = "odbc"
    label = "ODBC"
    fields = ("host", "port", "database", "username")
    secret_fields = {"password": password_secret()}
    option_fields = {
        "driver": forms.CharField(label="ODBC driver", required=False, help_text="For example: PostgreSQL Unicode"),
        "dsn": forms.CharField(label="ODBC data source name (DSN)", required=False),
        "extra": forms.CharField(label="Extra connection settings", required=False,
                                 help_text="Appended to the connection string, e.g. Encrypt=yes;"),
        "query_timeout": query_timeout_option(),
        "fast_csv": forms.BooleanField(
            label="Fast CSV extracts", required=False, initial=True,
            help_text="PostgreSQL through psqlODBC: the server writes each CSV line, as COPY would, and rows come "
                      "back as one value each. Untick to read the values one by one."),
    }
    harmless_options = frozenset({"query_timeout", "fast_csv"})
    removes_tool_statements = True

    def __init__(self, connection):
        super().__init__(connection)
        # A cancel calls SQLCancel from another thread (the run's watcher); closing the connection meanwhile
        # would free the statement the driver is cancelling (a crash later), so the two take turns.
        self._handles = threading.Lock()

    def release(self, connection):
        """Close one of this connector's connections, once no cancel is running on it."""
        with self._handles:
            self._active = None
            try:
                connection.close()
            except pyodbc.Error:
                pass

    @property
    def query_timeout(self):
        # Whole seconds, at least one: zero would mean "no limit" to every server.
        return max(1, math.ceil(float(self.connection.options.get("query_timeout") or DEFAULT_QUERY_TIMEOUT)))

    def _driver_name(self):
        options = self.connection.options
        if options.get("driver"):
            return options["driver"]
        return pyodbc.dataSources().get(options.get("dsn") or "", "")

    def connection_string(self, numeric_as_text=False):
        """The ODBC connection string; `numeric_as_text` asks psqlODBC to declare plain numeric as text (see the
        module docstring) unless the extra attributes choose NumericAs."""
        options, connection = self.connection.options, self.connection
        dsn, driver = (options.get("dsn") or "").strip(), (options.get("driver") or "").strip()
        if not dsn and not driver:
            raise ConnectorError("Set an ODBC driver name or a data source name (DSN)", step="settings")
        self._check_driver(dsn, driver, options)
        attributes = [("DSN", dsn) if dsn else ("Driver", driver)]
        for key, value in (("Server", connection.host), ("Port", connection.port),
                           ("Database", connection.database), ("Uid", connection.username),
                           ("Pwd", self.secret("password"))):
            if value not in (None, ""):
                attributes.append((key, value))
        extra = (options.get("extra") or "").strip().strip(";")
        chosen = attribute_names(extra) | {key.lower() for key, _ in attributes}
        family = driver_family(self._driver_name())
        if family == "postgresql":
            defaults = {"BoolsAsChar": 0, "UseDeclareFetch": 1, "Fetch": FETCH_ROWS}
            if numeric_as_text:
                defaults["NumericAs"] = SQL_VARCHAR
        elif family == "mysql":
            defaults = {"CONN_TIMEOUT": max(1, int(self.timeout)), "STREAMRS": 1,
                        "READ_TIMEOUT": self.query_timeout + READ_TIMEOUT_MARGIN}
        else:
            defaults = {}
        attributes += [(key, value) for key, value in defaults.items() if key.lower() not in chosen]
        text = ";".join(f"{key}={odbc_value(value)}" for key, value in attributes)
        return f"{text};{extra}" if extra else text

    @staticmethod
    def _check_driver(dsn, driver, options):
        """Only the server's installed drivers and data sources, by name: a driver given as a file path (in the
        driver box or the extra attributes) would load any library on the portal's server into its process."""
        if pyodbc is None:
            return
        if driver and driver not in pyodbc.drivers():
            raise ConnectorError(f"The ODBC driver {driver!r} is not installed on this server. Installed drivers: "
                                 f"{', '.join(pyodbc.drivers()) or 'none'}", step="settings")
        if dsn and dsn not in pyodbc.dataSources():
            raise ConnectorError(f"The data source {dsn!r} is not defined in odbc.ini on this server. Defined data "
                                 f"sources: {', '.join(sorted(pyodbc.dataSources())) or 'none'}", step="settings")
        refused = attribute_names((options.get("extra") or "").strip()) & {"driver", "dsn", "filedsn", "savefile"}
        if refused:
            raise ConnectorError(f"The extra attributes may not set {', '.join(sorted(refused))}: choose the "
                                 "driver or data source in its own box", step="settings")

    def numeric_declared(self):
        """Whether a `connect(numeric_as_text=True)` connection tells plain numeric from numeric(p,s)."""
        return (driver_family(self._driver_name()) == "postgresql"
                and "numericas" not in attribute_names((self.connection.options.get("extra") or "").strip()))

    def connect(self, numeric_as_text=False):
        if pyodbc is None:
            raise ConnectorError("ODBC is not available on this server: install unixODBC (Debian: unixodbc) and the "
                                 "database's ODBC driver", step="settings")
        try:
            connection = pyodbc.connect(self.connection_string(numeric_as_text), timeout=max(1, int(self.timeout)))
        except pyodbc.Error as exc:
            raise self.connect_error(exc) from None
        try:
            dbms = connection.getinfo(pyodbc.SQL_DBMS_NAME) or ""
            self._prepare_session(connection, dbms)
            return connection, dbms
        except pyodbc.Error as exc:
            connection.close()
            raise self.query_error(exc, "") from None
        except ConnectorError:
            connection.close()
            raise

    def _prepare_session(self, connection, dbms):
        """UTC and the query timeout, per server: most drivers ignore or refuse SQL_ATTR_QUERY_TIMEOUT. Read-only
        sessions (`read_only`) where the server has them; other servers are refused then."""
        if self.read_only:
            statement = READ_ONLY_SESSION.get(dbms)
            if statement is None:
                raise ConnectorError(f"{dbms or 'This ODBC server'} cannot promise a read-only session, so it is "
                                     "not queried in a dry run", step="settings")
            connection.cursor().execute(statement).close()
        seconds = self.query_timeout
        try:
            connection.timeout = seconds
        except pyodbc.Error:
            pass  # psqlODBC refuses it; the server-side setting below does the job
        statements = {
            "PostgreSQL": ["SET TimeZone = 'UTC'", "SET DateStyle = 'ISO'",
                           f"SET statement_timeout = {seconds * 1000}"],
            "MariaDB": ["SET time_zone = '+00:00'", f"SET SESSION max_statement_time = {seconds}"],
            "MySQL": ["SET time_zone = '+00:00'", f"SET SESSION max_execution_time = {seconds * 1000}"],
        }.get(dbms, [])
        if statements:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
            connection.commit()

    def _postgres_columns(self, connection, statement, params=None):
        """(name, type OID) of the statement's columns, without running it; None if it is not one query.

        pg_typeof() of the columns of an empty outer join gives each column's type in one row: no
        temporary view, so it works for read-only users and on standbys too.
        """
        cursor = connection.cursor()
        try:
            # The newline ends a trailing -- comment before the closing parenthesis.
            cursor.execute(f"SELECT * FROM ({statement}\n) AS etl_portal_q LIMIT 0", params or ())
            names = [column[0] for column in cursor.description or ()]
            if not names:
                return None
            # Own column names: a query may repeat one (a.id, b.id).
            aliases = [f"c{index}" for index in range(len(names))]
            types = ", ".join(f"pg_typeof(q.{alias})::oid" for alias in aliases)
            row = cursor.execute(f"SELECT {types} FROM (SELECT) AS one LEFT JOIN (SELECT * FROM ({statement}\n) "
                                 f"AS s LIMIT 0) AS q({', '.join(aliases)}) ON true",
                                 params or ()).fetchone()
            return list(zip(names, (int(oid) for oid in row)))
        except pyodbc.Error:
            return None
        finally:
            cursor.close()
            connection.rollback()

    def can_copy_csv(self, options):
        """Whether a CSV extract with these options can take the fast path (PostgreSQL through psqlODBC)."""
        return (self.connection.options.get("fast_csv", True) is not False and pyodbc is not None
                and copy_supports(options) and driver_family(self._driver_name()) == "postgresql")

    def copy_csv(self, sql, out, options, on_header=None, on_row_block=None, block_rows=100_000, params=None,
                 on_types=None):
        """Write the query's rows as CSV lines the server composes to binary file `out`; return (columns, rows).

        None when the statement is not one query that returns rows: the caller then reads it value by value.
        """
        connection, dbms = self.connect()
        try:
            statement = strip_statement(sql)
            columns = self._postgres_columns(connection, statement, params) if dbms == "PostgreSQL" else None
            if not columns:
                return None
            # One text value per row: its UTF-8 bytes as they come, without a detour through UTF-16.
            connection.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
            names = [name for name, _ in columns]
            if on_types:
                on_types([pg_type_name(oid) for _, oid in columns])
            if on_header:
                on_header(names)
            cursor = self._active = connection.cursor()
            lines_query = csv_lines_query(statement, [oid for _, oid in columns], options)
            cursor.execute(lines_query, params or ())
            rows = write_csv_lines(lambda: cursor.fetchmany(FETCH_ROWS), out, options, on_row_block, block_rows)
            return names, rows
        except pyodbc.Error as exc:
            raise self.query_error(exc, dbms) from None
        finally:
            self.release(connection)

    def cancel(self):
        with self._handles:
            if self._active is not None:
                self._active.cancel()  # SQLCancel: the driver asks the server to stop the statement

    def execute(self, sql, params=None):
        connection, dbms = self.connect(numeric_as_text=True)
        try:
            fix_row = names = oids = None
            if dbms == "PostgreSQL":
                statement = strip_statement(sql)
                columns = self._postgres_columns(connection, statement, params)
                if columns:
                    oids = [oid for _, oid in columns]
                    fix_row, names = row_fixer(oids), [name for name, _ in columns]
                    sql = value_query(statement, oids) or sql
            cursor = self._active = connection.cursor()
            # psqlODBC appends its own words to the statement; the newline ends a trailing -- comment first.
            cursor.execute(sql + "\n", params or ())
            if cursor.description is None:
                connection.commit()
            return OdbcResult(self, connection, cursor, dbms, fix_row, names, oids,
                              numeric_declared=oids is not None and self.numeric_declared())
        except pyodbc.Error as exc:
            self.release(connection)
            raise self.query_error(exc, dbms) from None
        except BaseException:
            self.release(connection)
            raise

    def sample(self, sql, params=None, limit=20):
        """Test query: a read-only transaction where the server has one (PostgreSQL, MariaDB, MySQL), always
        rolled back; other servers are refused, as nothing would keep a write from happening."""
        connection, dbms = self.connect()
        begin = {"PostgreSQL": "SET TRANSACTION READ ONLY", "MariaDB": "START TRANSACTION READ ONLY",
                 "MySQL": "START TRANSACTION READ ONLY"}.get(dbms)
        try:
            if begin is None:
                raise ConnectorError(f"Test query is not available for {dbms or 'this ODBC server'}: it cannot be "
                                     "run read-only there", step="settings")
            connection.autocommit = False
            cursor = self._active = connection.cursor()
            cursor.execute(begin)
            cursor.execute(sql + "\n", params or ())
            if cursor.description is None:
                return QuerySample(None, [], False, f"{dbms} transaction READ ONLY, rolled back")
            rows = [tuple(row) for row in cursor.fetchmany(limit + 1)]
            names = [column[0] for column in cursor.description]
            columns = [(name, value_type(row[i] for row in rows)) for i, name in enumerate(names)]
            return QuerySample(columns, rows[:limit], len(rows) > limit, f"{dbms} transaction READ ONLY, rolled back")
        except pyodbc.Error as exc:
            raise self.query_error(exc, dbms) from None
        finally:
            try:
                connection.rollback()
            except pyodbc.Error:
                pass
            self.release(connection)

    def query_error(self, exc, dbms):
        state, text = sqlstate_and_text(exc)
        message = clean_message(text)
        lowered = message.lower()
        if "due to user request" in lowered:
            return ConnectorError("Query cancelled: the run was stopped", step="query")
        if (state in ("57014", "HYT00") or "statement timeout" in lowered or "max_statement_time" in lowered
                or "maximum statement execution time" in lowered):
            return ConnectorError(
                f"Query cancelled: it ran past the connection's query timeout ({self.query_timeout} s)", step="query")
        if "unsupported type from postgres" in lowered:
            message += " (use the PostgreSQL Unicode driver: the ANSI one cannot read text columns)"
        retryable = state.startswith("08") or "lost connection" in lowered or "server closed" in lowered
        return ConnectorError(self.scrub(f"{dbms or 'Database'} error: {message}"), retryable=retryable, step="query")

    def connect_error(self, exc):
        state, text = sqlstate_and_text(exc)
        message = self.scrub(clean_message(text))
        lowered = message.lower()
        where = f"{self.connection.host}:{self.connection.port}" if self.connection.port else self.connection.host
        options = self.connection.options
        if state == "IM002" or "data source name not found" in lowered:
            names = ", ".join(sorted(pyodbc.dataSources())) or "none"
            return ConnectorError(f"The data source {options.get('dsn') or '(default)'!r} is not defined in odbc.ini "
                                  f"on this server. Defined data sources: {names}", step="settings")
        if "can't open lib" in lowered or "driver not found" in lowered:
            return ConnectorError(f"The ODBC driver {options.get('driver')!r} is not installed on this server. "
                                  f"Installed drivers: {', '.join(pyodbc.drivers()) or 'none'}", step="settings")
        if (state == "28000" or "access denied" in lowered or "password authentication failed" in lowered
                or "authentication failed" in lowered or "no password supplied" in lowered):
            return ConnectorError(f"Authentication failed for user {self.connection.username!r}: {message}",
                                  step="authentication")
        if "could not translate host name" in lowered or "unknown server host" in lowered:
            return ConnectorError(f"Name resolution failed: the host name {self.connection.host!r} is not known",
                                  retryable=True, step="name resolution")
        if (state == "HYT00" or "timeout expired" in lowered or "timed out" in lowered
                or "system error: 110" in lowered or "(110)" in lowered):
            return ConnectorError(f"Timed out connecting to {where}", retryable=True, step="timeout")
        if "connection refused" in lowered or "can't connect to" in lowered:
            return ConnectorError(f"Connection refused by {where}: nothing is listening there", retryable=True,
                                  step="refused")
        return ConnectorError(f"Could not connect through ODBC: {message}", retryable=True, step="connect")

    def test(self):
        connection, dbms = self.connect()
        try:
            row = connection.cursor().execute("SELECT 1").fetchone()
            version = connection.getinfo(pyodbc.SQL_DBMS_VER)
            driver = connection.getinfo(pyodbc.SQL_DRIVER_NAME)
        except pyodbc.Error as exc:
            raise self.query_error(exc, dbms) from None
        finally:
            connection.close()
        if not row or row[0] != 1:
            raise ConnectorError("Connected, but SELECT 1 did not return 1", step="query")
        return f"Connected to {dbms} {version} through {driver}; SELECT 1 returned 1."
