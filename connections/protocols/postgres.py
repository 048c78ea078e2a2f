"""PostgreSQL through psycopg 3: server-side cursors for rows, COPY for the fast CSV path and for Parquet
(`copy_typed_rows`: COPY's CSV lines in chunks, which runs/parquet.py parses into typed columns).

Bound parameters (COPY takes none) go into session settings the statement reads (`_settings_statement`);
where that cannot be done, and through ODBC, the same CSV bytes come from lines the server composes by
COPY's rules (`csv_lines_query`).
"""
import array
import re
import select

import psycopg
from psycopg import sql as pgsql
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader
from psycopg.types.string import TextLoader

from django import forms

from connections.protocols.base import (ConnectorError, Database, QueryResult, QuerySample, password_secret,
                                        query_timeout_option)
from connections.protocols.column_types import pg_column_type, pg_numeric_typmod, pg_type_name
from connections.protocols.registry import register

DEFAULT_QUERY_TIMEOUT = 90 * 60
BOOL_OID = 16
COPY_DELIMITERS = {",", "\t", "|", ";"}
# Types whose text form is never empty and never holds a quote, a delimiter COPY accepts or a line break,
# so their values need no quoting test: bool, int8, int2, int4, oid, float4, float8, date, time,
# timestamp, timestamptz, numeric, timetz, uuid.
# psycopg's placeholders in a query bound with style "format" (runs/sql_parameters.py), and PostgreSQL's own.
BOUND_PLACEHOLDER = re.compile(r"(%s|%%)")
DOLLAR_PARAMETER = re.compile(r"\$(\d+)")
# inet and char(n): their cast to text is not their output function's text.
OUTPUT_FUNCTION_TYPES = {869, 1042}
PLAIN_TEXT_TYPES = {16, 20, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1700, 1266, 2950}

READ_ONLY = "PostgreSQL transaction READ ONLY, rolled back"


def _error_text(exc):
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    return primary or str(exc).strip()


def query_error(exc, scrub):
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return ConnectorError("Query cancelled: it ran past the connection's query timeout or was stopped",
                              step="query")
    if isinstance(exc, psycopg.OperationalError):
        return ConnectorError(scrub(f"PostgreSQL connection lost: {_error_text(exc)}"), retryable=True, step="query")
    return ConnectorError(scrub(f"PostgreSQL error: {_error_text(exc)}"), step="query")


class _TextBeyondPython:
    """A date or timestamp Python cannot hold ('infinity', BC, after year 9999) comes as PostgreSQL's text
    for it, as COPY writes it, rather than failing the whole extract."""

    def load(self, data):
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode()


LOADERS = {name: type(f"Text{base.__name__}", (_TextBeyondPython, base), {})
           for name, base in (("date", DateLoader), ("timestamp", TimestampLoader),
                              ("timestamptz", TimestamptzLoader))}
# An interval as PostgreSQL writes it ("1 day 02:00:00"), not as Python prints a timedelta ("1 day, 2:00:00").
LOADERS["interval"] = TextLoader
# Only these types are read as Python values (the writers keep them typed); every other type, arrays,
# json, ranges, inet, timetz... comes as PostgreSQL's own text, the form COPY writes and ODBC gives, so every
# engine and every format writes it the same way (`{1,2}`, not `[1, 2]`; a json `null`, not a NULL).
TYPED = {"bool", "int2", "int4", "int8", "oid", "float4", "float8", "numeric", "date", "time", "timestamp",
         "timestamptz", "bytea", "text", "varchar", "bpchar", "name"}
TEXT_OIDS = sorted({info.oid for info in psycopg.postgres.types if info.name not in TYPED}
                   | {info.array_oid for info in psycopg.postgres.types if info.array_oid})


def _wait_for_data(pgconn):
    select.select([pgconn.socket], [], [], 1.0)
    pgconn.consume_input()


def copy_supports(options):
    """Whether COPY (and the server-composed lines, which write the same bytes) can write CSV with these options."""
    return (options.delimiter in COPY_DELIMITERS and options.quoting in ("minimal", "all")
            and options.line_terminator == "\n" and options.encoding in ("utf-8", "utf-8-sig", "cp1252"))


def csv_lines_query(statement, type_oids, options):
    """The statement wrapped so PostgreSQL returns each row as one CSV line, by COPY's rules: NULL is an
    empty field; a value is quoted (quotes doubled) when it is empty or holds the delimiter, a quote or a
    line break, or always with quoting "all"; a lone `\\.` in a one-column row is quoted too.

    Values take their text form from the type's output function (`::text`, `concat(...)` where the cast
    differs), the one COPY uses.
    """
    delimiter = "E'\\t'" if options.delimiter == "\t" else f"'{options.delimiter}'"
    aliases = [f"c{index}" for index in range(len(type_oids))]
    fields = []
    for alias, oid in zip(aliases, type_oids):
        # The cast to text of inet adds a /32 mask and that of char(n) drops trailing spaces; the output
        # function (concat() uses it), which COPY uses, keeps the value as it is. concat gives '' for NULL.
        cast = f"concat({alias})" if oid in OUTPUT_FUNCTION_TYPES else f"{alias}::text"
        text, quoted = cast, f"""'"' || replace({cast}, '"', '""') || '"'"""
        if options.quoting == "all":
            fields.append(f"CASE WHEN {alias} IS NULL THEN '' ELSE {quoted} END")
        elif oid in PLAIN_TEXT_TYPES:
            fields.append(f"COALESCE({text}, '')")
        else:
            # strpos() tests cost the server less than one regular expression.
            tests = [f"{text} = ''"] + [f"strpos({text}, {char}) > 0"
                                         for char in ("'\"'", delimiter, "E'\\n'", "E'\\r'")]
            if len(type_oids) == 1:
                tests.append(f"{text} = E'\\\\.'")
            fields.append(f"CASE WHEN {alias} IS NULL THEN '' WHEN {' OR '.join(tests)} THEN {quoted} "
                          f"ELSE {text} END")
    line = f" || {delimiter} || ".join(fields)
    # The newline ends a trailing "-- comment" in the user's statement before the wrapper's ")".
    return f"SELECT {line} FROM ({statement}\n) AS etl_portal_q({', '.join(aliases)})"


def write_csv_lines(fetch_batch, out, options, on_row_block, block_rows):
    """Write the rows of a `csv_lines_query` (batches of one-value rows from `fetch_batch()`) to binary file
    `out`; return the row count."""
    encoding = "cp1252" if options.encoding == "cp1252" else "utf-8"
    rows, next_report = 0, block_rows
    while batch := fetch_batch():
        out.write(("\n".join([row[0] for row in batch]) + "\n").encode(encoding))
        rows += len(batch)
        if on_row_block and rows >= next_report:
            on_row_block(rows)
            next_report = (rows // block_rows + 1) * block_rows
    return rows


def strip_statement(sql):
    return sql.strip().rstrip(";").strip()


class PostgresResult(QueryResult):
    def __init__(self, connector, connection, cursor, columns, rowcount=-1):
        self._connector = connector
        self._connection = connection
        self._cursor = cursor
        self.columns = columns
        self.rowcount = rowcount

    @property
    def type_names(self):
        return [pg_type_name(column.type_code) for column in self._cursor.description or ()]

    @property
    def types(self):
        """The columns' declared types (connections/protocols/column_types.py), numeric precision and scale
        included."""
        return [pg_column_type(column.type_code, column.precision, column.scale)
                for column in self._cursor.description or ()]

    def batches(self, size=5000):
        try:
            while rows := self._cursor.fetchmany(size):
                yield rows
        except psycopg.Error as exc:
            raise query_error(exc, self._connector.scrub) from None

    def close(self):
        self._connection.close()


@register
class PostgresDatabase(Database):
    kind = "postgresql"
    label = "PostgreSQL"
    fields = ("host", "port", "database", "username")
    secret_fields = {"password": password_secret()}
    option_fields = {
        "query_timeout": query_timeout_option(),
        "sslmode": forms.ChoiceField(
            label="SSL mode", required=False,
            choices=[("", "Default (prefer)"), ("disable", "disable"), ("allow", "allow"), ("prefer", "prefer"),
                     ("require", "require"), ("verify-ca", "verify-ca"), ("verify-full", "verify-full")]),
    }
    harmless_options = frozenset({"query_timeout"})
    default_port = 5432
    paramstyle = "format"  # psycopg takes %s

    def connect(self):
        query_timeout_ms = int(float(self.connection.options.get("query_timeout") or DEFAULT_QUERY_TIMEOUT) * 1000)
        try:
            self._active = psycopg.connect(
                host=self.connection.host or "127.0.0.1",
                port=self.connection.port or self.default_port,
                dbname=self.connection.database or None,
                user=self.connection.username or None,
                password=self.secret("password") or None,
                sslmode=self.connection.options.get("sslmode") or "prefer",
                connect_timeout=max(1, int(self.timeout)),
                application_name="etl-portal",
                options=f"-c statement_timeout={query_timeout_ms} -c DateStyle=ISO -c TimeZone=UTC"
                        + (" -c default_transaction_read_only=on" if self.read_only else ""),
            )
            for name, loader in LOADERS.items():
                self._active.adapters.register_loader(name, loader)
            for oid in TEXT_OIDS:
                self._active.adapters.register_loader(oid, TextLoader)
            return self._active
        except psycopg.OperationalError as exc:
            text = _error_text(exc)
            step = "authentication" if "authentication" in text or "password" in text else "connect"
            raise ConnectorError(self.scrub(f"Cannot connect to PostgreSQL: {text}"),
                                 retryable=step != "authentication", step=step) from None

    def cancel(self):
        connection = self._active
        if connection is not None and not connection.closed:
            connection.cancel_safe(timeout=5)

    def describe(self, connection, sql):
        """Column (name, type oid, type modifier) of a single statement, without running it; [] when it returns
        no rows.

        None when it cannot be described alone (several statements): the caller runs it as a script.
        """
        pgconn = connection.pgconn
        result = pgconn.prepare(b"", sql.encode())
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            if "multiple commands" in message:
                return None
            raise ConnectorError(self.scrub(f"PostgreSQL error: {message.removeprefix('ERROR:').strip()}"),
                                 step="query")
        described = pgconn.describe_prepared(b"")
        return [(described.fname(i).decode(), described.ftype(i), described.fmod(i)) for i in range(described.nfields)]

    def execute(self, sql, params=None):
        connection = self.connect()
        try:
            statement = strip_statement(sql)
            columns = None if params else self.describe(connection, statement)
            if columns == [] or columns is None:
                cursor = connection.cursor()
                cursor.execute(statement if columns == [] else sql, params)
                connection.commit()
                names = [col.name for col in cursor.description] if cursor.description else None
                return PostgresResult(self, connection, cursor, names, cursor.rowcount)
            cursor = connection.cursor(name="etl_portal_extract")
            cursor.itersize = 5000
            cursor.execute(statement, params)
            return PostgresResult(self, connection, cursor, [name for name, _, _ in columns])
        except psycopg.Error as exc:
            connection.close()
            raise query_error(exc, self.scrub) from None
        except BaseException:
            connection.close()
            raise

    def _settings_statement(self, connection, statement, params):
        """The statement with its i-th `%s` read from the session setting etl_portal.p<i>, cast to the type the
        server infers for it; each value is bound to set_config(), never written into the text. COPY can
        run the result (it takes no parameters) at COPY's speed. None when this cannot be done safely: named
        or NULL parameters, `$n` already in the text, a statement the server cannot prepare alone.
        """
        if not isinstance(params, (list, tuple)) or any(value is None for value in params) \
                or DOLLAR_PARAMETER.search(statement):
            return None
        numbered, count = [], 0
        for part in BOUND_PLACEHOLDER.split(statement):
            if part == "%s":
                count += 1
                part = f"${count}"
            numbered.append("%" if part == "%%" else part)
        if count != len(params):
            return None  # placeholders and values do not pair up: let the cursor path report it
        text = "".join(numbered)
        pgconn = connection.pgconn
        prepared = pgconn.prepare(b"", text.encode())
        if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
            return None
        described = pgconn.describe_prepared(b"")
        oids = [described.param_type(index) for index in range(described.nparams)]
        if len(oids) != len(params):
            return None
        with connection.cursor() as cursor:
            type_names = cursor.execute("SELECT format_type(oid, NULL) FROM unnest(%s::oid[]) WITH ORDINALITY AS "
                                        "t(oid, n) ORDER BY n", [list(oids)]).fetchall()
            for number, value in enumerate(params, 1):
                cursor.execute("SELECT set_config(%s, %s::text, false)", [f"etl_portal.p{number}", value])
        return DOLLAR_PARAMETER.sub(
            lambda match: f"current_setting('etl_portal.p{match.group(1)}')::{type_names[int(match.group(1)) - 1][0]}",
            text)

    def sample(self, sql, params=None, limit=20):
        """Test query: in a READ ONLY transaction, rolled back, within the connection's statement_timeout; a
        single SELECT goes through a server-side cursor, so only `limit` + 1 rows leave the server."""
        connection = self.connect()
        try:
            connection.read_only = True  # psycopg opens each transaction with BEGIN READ ONLY
            statement = strip_statement(sql)
            try:
                cursor = connection.cursor(name="etl_portal_test_query")
                cursor.execute(statement, params)
            except psycopg.errors.SyntaxError:
                # DECLARE takes only a SELECT or VALUES; anything else runs plainly, still read-only.
                connection.rollback()
                cursor = connection.cursor()
                cursor.execute(sql, params)
            if cursor.description is None:
                return QuerySample(None, [], False, READ_ONLY)
            rows = cursor.fetchmany(limit + 1)
            columns = [(column.name, column.type_display) for column in cursor.description]
            return QuerySample(columns, rows[:limit], len(rows) > limit, READ_ONLY)
        except psycopg.Error as exc:
            raise query_error(exc, self.scrub) from None
        finally:
            connection.rollback()
            connection.close()

    def _bound_csv_lines(self, connection, statement, params, out, options, on_header, on_row_block, block_rows,
                         on_types=None):
        probe = connection.cursor()
        try:
            # The newline ends a trailing "-- comment" in the user's query before the wrapper's ")".
            probe.execute(f"SELECT * FROM ({statement}\n) AS q LIMIT 0", params)
        except psycopg.Error:
            connection.rollback()
            return None  # not one query (an UPDATE, a script): the portable path runs it and says so
        columns = [(column.name, column.type_code) for column in probe.description or ()]
        if not columns:
            return None
        names = [name for name, _ in columns]
        if on_types:
            on_types([pg_type_name(oid) for _, oid in columns])
        if on_header:
            on_header(names)
        cursor = connection.cursor(name="etl_portal_extract")
        cursor.execute(csv_lines_query(statement, [oid for _, oid in columns], options), params)
        rows = write_csv_lines(lambda: cursor.fetchmany(5000), out, options, on_row_block, block_rows)
        return names, rows

    def _start_copy(self, pgconn, copy_sql):
        pgconn.send_query(copy_sql)
        while pgconn.flush():
            select.select([], [pgconn.socket], [], 1.0)
        while pgconn.is_busy():
            _wait_for_data(pgconn)
        started = pgconn.get_result()
        if started.status != psycopg.pq.ExecStatus.COPY_OUT:
            self._raise_result_error(pgconn, started)

    def _finish_copy(self, pgconn):
        while pgconn.is_busy():
            _wait_for_data(pgconn)
        result = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass
        if result is None or result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            self._raise_result_error(pgconn, result)

    def _stream_copy(self, connection, copy_sql, write, on_row_block, block_rows):
        """Pump COPY OUT data straight from libpq into `write`; return the row count.

        This loop is the hot path of every PostgreSQL extract. It talks to libpq directly because
        psycopg's Copy object costs a Python generator round trip per row (about 0.5 s per million
        rows here); the server sends one message per row, so rows are counted by the loop itself.
        """
        pgconn = connection.pgconn
        self._start_copy(pgconn, copy_sql)
        get_copy_data = pgconn.get_copy_data
        rows, finished = 0, False
        while not finished:
            for count in range(block_rows):
                # Non-blocking reads, waiting in select(): a blocking libpq read would hold the GIL,
                # freezing the lease heartbeat and the cancel watcher while the server thinks.
                size, data = get_copy_data(1)
                while size == 0:
                    _wait_for_data(pgconn)
                    size, data = get_copy_data(1)
                if size < 0:
                    finished = True
                    break
                write(data)
            else:
                count = block_rows
            rows += count
            if on_row_block and not finished:
                on_row_block(rows)
        self._finish_copy(pgconn)
        return rows

    def _stream_copy_chunks(self, connection, copy_sql, on_rows, chunk_rows, chunk_bytes):
        """Pump COPY OUT data into chunks of whole rows (one libpq message each, so a value's line breaks never
        split a row), of at most `chunk_rows` rows or about `chunk_bytes` bytes: `on_rows(data, ends,
        first_row)` takes each, `data` the rows' bytes (a bytearray) and `ends` (an array of int64) the offset
        where each row ends. Returns the row count.

        One growing bytearray and an array of offsets rather than a list of rows: no object per row is kept
        (a list of libpq's buffer views, objects the garbage collector tracks, made the loop 3x slower; a
        list of copies still cost a third more than this).
        """
        pgconn = connection.pgconn
        self._start_copy(pgconn, copy_sql)
        get_copy_data = pgconn.get_copy_data
        rows, finished = 0, False
        while not finished:
            data, ends = bytearray(), array.array("q")
            end = ends.append
            for _ in range(chunk_rows):
                length, row = get_copy_data(1)  # non-blocking, as in _stream_copy
                while length == 0:
                    _wait_for_data(pgconn)
                    length, row = get_copy_data(1)
                if length < 0:
                    finished = True
                    break
                data += row
                end(len(data))
                if len(data) >= chunk_bytes:
                    break
            if ends:
                on_rows(data, ends, rows + 1)
                rows += len(ends)
        self._finish_copy(pgconn)
        return rows

    def _raise_result_error(self, pgconn, result):
        message = ((result.error_message if result is not None else b"") or pgconn.error_message or b"")
        message = message.decode(errors="replace").strip().removeprefix("ERROR:").strip()
        while pgconn.get_result() is not None:
            pass
        if "canceling statement due to statement timeout" in message or "canceling statement" in message:
            raise ConnectorError("Query cancelled: it ran past the connection's query timeout or was stopped",
                                 step="query")
        raise ConnectorError(self.scrub(f"PostgreSQL error: {message or 'the connection was lost'}"),
                             retryable=not message, step="query")

    def can_copy_csv(self, options):
        return copy_supports(options)

    def _copy_command(self, connection, statement, delimiter=",", quote_all=False, encoding=None):
        """(columns as (name, oid, typmod), the COPY command writing the statement's rows as CSV: booleans as
        true/false, NULL an unquoted empty field); None when the statement cannot be described alone."""
        columns = self.describe(connection, statement)
        if not columns:
            return None
        aliases = [pgsql.Identifier(f"c{i}") for i in range(len(columns))]
        select_list = pgsql.SQL(", ").join(
            pgsql.SQL("CASE WHEN {0} THEN 'true' WHEN NOT {0} THEN 'false' END").format(alias)
            if oid == BOOL_OID else alias
            for alias, (_, oid, _) in zip(aliases, columns)
        )
        copy_options = [pgsql.SQL("FORMAT csv"), pgsql.SQL("DELIMITER {}").format(pgsql.Literal(delimiter))]
        if quote_all:
            copy_options.append(pgsql.SQL("FORCE_QUOTE *"))
        if encoding:
            copy_options.append(pgsql.SQL("ENCODING {}").format(pgsql.Literal(encoding)))
        # The newline ends a trailing "-- comment" in the user's query before the wrapper's ")".
        copy = pgsql.SQL("COPY (SELECT {} FROM ({}\n) AS q({})) TO STDOUT WITH ({})").format(
            select_list, pgsql.SQL(statement), pgsql.SQL(", ").join(aliases), pgsql.SQL(", ").join(copy_options)
        )
        return columns, copy.as_bytes(connection)

    def copy_csv(self, sql, out, options, on_header=None, on_row_block=None, block_rows=100_000, params=None,
                 on_types=None):
        """Write the query's rows as CSV to binary file `out` with COPY; return (columns, rows). `on_header` gets
        the column names before the first row, `on_types` their type names (column_types.pg_type_name).

        Values come out in the same form as the portable writer's (see runs.formats): booleans as
        true/false, NULL as an empty field, timestamps in UTC. COPY cannot take parameters: with `params`,
        each value is bound into a session setting the statement reads (`_settings_statement`), or, where
        that cannot be done, the server writes the same CSV lines through a cursor (`csv_lines_query`).
        Returns None when the statement cannot be described alone, so the caller falls back to the
        portable path.
        """
        connection = self.connect()
        try:
            statement = strip_statement(sql)
            if params:
                settings_statement = self._settings_statement(connection, statement, params)
                if settings_statement is None:
                    return self._bound_csv_lines(connection, statement, params, out, options, on_header,
                                                 on_row_block, block_rows, on_types)
                statement = settings_statement
            command = self._copy_command(connection, statement, options.delimiter, options.quoting == "all",
                                         "WIN1252" if options.encoding == "cp1252" else None)
            if command is None:
                return None
            columns, copy = command
            names = [name for name, _, _ in columns]
            if on_types:
                on_types([pg_type_name(oid) for _, oid, _ in columns])
            if on_header:
                on_header(names)
            rows = self._stream_copy(connection, copy, out.write, on_row_block, block_rows)
            return names, rows
        except psycopg.Error as exc:
            raise query_error(exc, self.scrub) from None
        finally:
            connection.close()

    def copy_typed_rows(self, sql, on_columns, on_rows, params=None, chunk_rows=100_000, chunk_bytes=64 << 20,
                        on_types=None):
        """Stream the query's rows through COPY for a writer that parses them into typed columns (Parquet).

        `on_columns(names, types)` is called once (types: column_types.ColumnType, numeric precision and
        scale from the type modifier); then `on_rows(data, ends, first_row)` for each chunk of rows (see
        `_stream_copy_chunks`), CSV lines in COPY's form: UTF-8, comma-delimited, LF, NULL an unquoted empty field, an empty string
        `""`, booleans true/false, dates and timestamps in ISO form in UTC (`+00`), floats in their shortest
        exact form, bytea as `\\x` + hex, every other value as its type's output function writes it. Returns
        (names, rows), or None when COPY cannot run the statement (not one query, or parameters that cannot
        go through session settings): the caller then reads the rows one by one. `on_types` gets the columns'
        type names (column_types.pg_type_name), as for `copy_csv`.
        """
        connection = self.connect()
        try:
            statement = strip_statement(sql)
            if params:
                statement = self._settings_statement(connection, statement, params)
                if statement is None:
                    return None
            # The forms the parser expects whatever the server's defaults: exact floats, hex bytea.
            connection.execute("SET extra_float_digits = 3")
            connection.execute("SET bytea_output = 'hex'")
            command = self._copy_command(connection, statement, encoding="UTF8")
            if command is None:
                return None
            columns, copy = command
            names = [name for name, _, _ in columns]
            if on_types:
                on_types([pg_type_name(oid) for _, oid, _ in columns])
            on_columns(names, [pg_column_type(oid, *pg_numeric_typmod(typmod)) for _, oid, typmod in columns])
            rows = self._stream_copy_chunks(connection, copy, on_rows, chunk_rows, chunk_bytes)
            return names, rows
        except psycopg.Error as exc:
            raise query_error(exc, self.scrub) from None
        finally:
            connection.close()
