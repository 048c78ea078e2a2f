"""One table of awkward values per engine, extracted in every format on every path, read back and compared
value by value with the engine's own text form of each value (`col::text` in PostgreSQL, CAST AS CHAR in
MariaDB, CAST AS TEXT in SQLite).

The only documented differences: booleans are true/false; numbers are compared by value where the format
keeps them as numbers (JSON Lines, Excel, Parquet); Excel text carries ECMA-376's `_xHHHH_` escapes; fixed
width writes NULL and an empty string alike (padding) and refuses line breaks, so its check leaves out the
text column holding them.
"""
import datetime
import decimal
import json
import re

import openpyxl
import psycopg
import pytest

from connections.protocols.postgres import PostgresDatabase
from runs.errors import PipelineError
from runs.extract import extract_to_csv
from runs.formats import CsvOptions
from tests.servers import postgres as pg

pytestmark = pytest.mark.django_db

PG_COLUMNS = ("id int, c char(4), t text, n numeric, f float8, d date, ts timestamp, tz timestamptz, b boolean, bin bytea, "
              "a int[], ta text[], j json, jb jsonb, iv interval, m money, u uuid, tt timetz, r int4range, ip inet")
PG_ROWS = [
    "(1, 'ab  ', E'cr\\r\\nlf', 12345678901234567.891, 0.1, '2024-02-29', '2024-01-02 03:04:05.123456', "
    "'2024-06-01 12:00:00.5+02', true, '\\x00ff', '{1,NULL,3}', '{\"a,b\",\"c\\\"d\"}', 'null', "
    "'{\"k\": [1, \"é\"]}', '1 day 02:00:00', 1234.5, '12345678-1234-5678-1234-567812345678', '03:04:05+02', "
    "'[1,5)', '10.0.0.1/24')",
    "(2, '', E'_x0041_ =1+1 \\x01ctl 😀', 'NaN', 'Infinity', 'infinity', '-infinity', 'infinity', false, '', '{}', "
    "'{}', '[]', 'null', '-3 mons', -0.5, NULL, '00:00:00+00', 'empty', '::1')",
    "(3, NULL, '', 'Infinity', '-Infinity', '0044-03-15 BC', '1899-12-31 23:59:59', '-infinity', NULL, NULL, NULL, "
    "NULL, '{\"a\": null}', '{\"a\": null}', '0', 0, NULL, NULL, NULL, NULL)",
    "(4, 'x', 'plain', 12.50, 1e20, '1900-03-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', true, NULL, "
    "'{{1,2},{3,4}}', NULL, '1', '\"é\"', '1 sec', NULL, NULL, NULL, NULL, NULL)",
    "(5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL)",
]
NUMERIC = {"id", "n", "f", "i", "x"}
ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")


@pytest.fixture
def awkward_pg(pg_connection, odbc_pg_connection):
    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        conn.execute("DROP TABLE IF EXISTS awkward")
        conn.execute(f"CREATE TABLE awkward ({PG_COLUMNS})")
        conn.execute(f"INSERT INTO awkward VALUES {', '.join(PG_ROWS)}")
        names = [column.split()[0] for column in PG_COLUMNS.split(", ")]
        # The output function's text, as psql writes it (concat() uses it; a cast to text may not).
        texts = ", ".join(f"CASE WHEN {name} IS NOT NULL THEN concat({name}) END" for name in names)
        expected = [list(row) for row in conn.execute(f"SELECT {texts} FROM awkward ORDER BY id").fetchall()]
    booleans = names.index("b")
    for row in expected:  # psql writes t/f; the portal writes true/false (documented)
        row[booleans] = {"t": "true", "f": "false"}.get(row[booleans], row[booleans])
    return names, expected


# --- reading each format back as text ----------------------------------------------------------------

def csv_fields(text):
    """CSV rows with NULL (an unquoted empty field) told apart from an empty string (`""`)."""
    rows, row, field, quoted, position = [], [], [], False, 0
    while position < len(text):
        char = text[position]
        if quoted:
            if char == '"' and text[position + 1:position + 2] == '"':
                field.append('"')
                position += 1
            elif char == '"':
                quoted = False
            else:
                field.append(char)
        elif char == '"':
            quoted, field = True, field or [""]
        elif char in ",\n" or text.startswith("\r\n", position):
            row.append("".join(field) if field else None)
            field = []
            if char != ",":
                rows.append(row)
                row = []
                position += 1 if char == "\r" else 0
        else:
            field.append(char)
        position += 1
    return rows


def read_csv(path, names):
    rows = csv_fields(path.read_bytes().decode())
    assert rows[0] == names
    return rows[1:]


def read_jsonl(path, names):
    rows = []
    for line in path.read_bytes().decode().split("\n")[:-1]:
        value = json.loads(line, parse_float=decimal.Decimal)
        assert list(value) == names
        rows.append(list(value.values()))
    return rows


def read_xlsx(path, names):
    sheet = openpyxl.load_workbook(path).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == names
    return [[ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), value) if isinstance(value, str) else value
             for value in row] for row in rows[1:]]


def read_parquet(path, names):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    assert table.column_names == names
    return [list(row.values()) for row in table.to_pylist()]


def read_duckdb(path, names):
    import duckdb

    with duckdb.connect() as db:
        result = db.execute("SELECT * FROM read_parquet(?)", [str(path)])
        assert [column[0] for column in result.description] == names
        return [list(row) for row in result.fetchall()]


FIXED_WIDTH = 40  # wider than every value; "~" pads, so trailing spaces of a value stay visible


def fixed_options(names):
    return CsvOptions(layout="\n".join([f"{FIXED_WIDTH} left ~"] * len(names)))


def read_fixed(path, names):
    """Fixed-width fields without their padding; a field of padding only is NULL (or an empty string: the
    format cannot tell them apart, documented)."""
    lines = path.read_bytes().decode().split("\n")
    assert lines.pop() == ""
    rows = []
    for line in lines:
        assert len(line) == FIXED_WIDTH * len(names)
        fields = [line[index:index + FIXED_WIDTH].rstrip("~") for index in range(0, len(line), FIXED_WIDTH)]
        rows.append([field or None for field in fields])
    return rows


READERS = {"csv": read_csv, "jsonl": read_jsonl, "xlsx": read_xlsx, "parquet": read_parquet, "fixed": read_fixed}


def same(expected, got, column):
    """Whether a value read back is the engine's text form `expected` (see the module docstring)."""
    if expected is None or got is None:
        return expected is got
    if isinstance(got, bool):
        return expected == ("true" if got else "false")
    if isinstance(got, (int, float, decimal.Decimal)) or (column in NUMERIC and expected not in ("NaN",)):
        try:
            return decimal.Decimal(str(got)) == decimal.Decimal(expected)
        except decimal.InvalidOperation:
            return str(got) == expected
    if isinstance(got, datetime.datetime):
        return got == datetime.datetime.fromisoformat(expected)
    if isinstance(got, datetime.date):
        return got == datetime.date.fromisoformat(expected)
    if isinstance(got, bytes):
        return "\\x" + got.hex() == expected
    if isinstance(got, datetime.time):
        return got == datetime.time.fromisoformat(expected)
    if got != expected and column in ("d", "ts"):  # MariaDB's text has the declared fraction: .000000
        return datetime.datetime.fromisoformat(got) == datetime.datetime.fromisoformat(expected)
    return got == expected


def assert_same(names, expected, rows, where):
    assert len(rows) == len(expected), where
    for number, (want, got) in enumerate(zip(expected, rows), 1):
        for column, value, read in zip(names, want, got):
            assert same(value, read, column), f"{where}: row {number}, column {column}: {read!r} is not {value!r}"


def extract(connection, tmp_path, file_format, query, params=None, options=CsvOptions()):
    path = tmp_path / f"out.{file_format}"
    extract_to_csv(connection.connector(), query, path, options, progress=lambda rows: None,
                            file_format=file_format, params=params)
    return path


# --- PostgreSQL: native (COPY, row by row, bound parameters) and through ODBC -------------------------

@pytest.mark.parametrize("file_format", ["csv", "jsonl", "xlsx"])
@pytest.mark.parametrize("path", ["native", "native bound", "odbc", "odbc bound"])
def test_postgresql_every_value_in_every_format(awkward_pg, pg_connection, odbc_pg_connection, tmp_path, path,
                                                file_format):
    names, expected = awkward_pg
    connection = odbc_pg_connection if path.startswith("odbc") else pg_connection
    if path.endswith("bound"):
        mark = "?" if path.startswith("odbc") else "%s"
        query, params = f"SELECT * FROM awkward WHERE id > {mark} ORDER BY id", [0]
    else:
        query, params = "SELECT * FROM awkward ORDER BY id", None
    rows = READERS[file_format](extract(connection, tmp_path, file_format, query, params), names)
    assert_same(names, expected, rows, f"{path} {file_format}")


# Parquet has no place for an infinite or BC date: those columns are left out here, and refused below.
PARQUET_COLUMNS = "id, c, t, n, f, b, bin, a, ta, j, jb, iv, m, u, tt, r, ip"


@pytest.mark.parametrize("path", ["native", "native bound", "odbc", "odbc bound"])
def test_postgresql_every_value_in_parquet_read_by_pyarrow_and_duckdb(awkward_pg, pg_connection, odbc_pg_connection,
                                                                      tmp_path, path):
    names, expected = awkward_pg
    kept = PARQUET_COLUMNS.split(", ")
    expected = [[row[names.index(name)] for name in kept] for row in expected]
    connection = odbc_pg_connection if path.startswith("odbc") else pg_connection
    query, params = f"SELECT {PARQUET_COLUMNS} FROM awkward ORDER BY id", None
    if path.endswith("bound"):
        mark = "?" if path.startswith("odbc") else "%s"
        query, params = f"SELECT {PARQUET_COLUMNS} FROM awkward WHERE id > {mark} ORDER BY id", [0]
    parquet = extract(connection, tmp_path, "parquet", query, params)
    assert_same(kept, expected, read_parquet(parquet, kept), f"{path} parquet")
    assert_same(kept, expected, read_duckdb(parquet, kept), f"{path} parquet in duckdb")


def test_parquet_through_copy_holds_what_the_row_by_row_writer_holds(awkward_pg, pg_connection, tmp_path,
                                                                     monkeypatch):
    """From PostgreSQL, Parquet is parsed from COPY's text; the writer fed Python values (every other engine,
    or parameters COPY cannot take) must give the same columns, types and values."""
    import pyarrow.parquet as pq

    from runs.extract import _portable_path
    from runs.parquet import ParquetWriter

    query = (f"SELECT {PARQUET_COLUMNS}, 1.5::float4 AS f4, 7::int8 AS big, 'pg_class'::regclass::oid AS o, "
             "'03:04:05.123456'::time AS tm, d::text AS day_text, (id * 1.25)::numeric(6,2) AS amount "
             "FROM awkward ORDER BY id")
    with monkeypatch.context() as patch:  # the COPY path alone: no row-by-row fallback
        patch.setattr(PostgresDatabase, "execute", lambda *args: pytest.fail("read row by row"))
        copied = pq.read_table(extract(pg_connection, tmp_path, "parquet", query))
    with open(tmp_path / "values.parquet", "wb") as out:
        _portable_path(pg_connection.connector(), query, out, CsvOptions(), lambda rows: None, 100, ParquetWriter)
    by_value = pq.read_table(tmp_path / "values.parquet")
    assert copied.schema == by_value.schema
    assert copied.to_pylist() == by_value.to_pylist()
    assert copied.num_rows == 5 and copied.column("amount").to_pylist()[0] == decimal.Decimal("1.25")


def test_parquet_keeps_decimal_precision_and_zones_as_utc_instants(pg_connection, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    query = ("SELECT 12.50::numeric(12,2) AS amount, '2024-06-01 12:00:00.5+02'::timestamptz AS at, "
             "'2024-06-01 12:00:00'::timestamp AS local, '{\"a\": null}'::json AS doc, 7::int2 AS small, "
             "'\\x00ff'::bytea AS blob, '2024-02-29'::date AS day")
    table = pq.read_table(extract(pg_connection, tmp_path, "parquet", query))
    assert table.schema.types == [pa.decimal128(12, 2), pa.timestamp("us", tz="UTC"), pa.timestamp("us"),
                                  pa.string(), pa.int16(), pa.binary(), pa.date32()]
    assert table.to_pylist() == [{
        "amount": decimal.Decimal("12.50"),
        "at": datetime.datetime(2024, 6, 1, 10, 0, 0, 500000, tzinfo=datetime.timezone.utc),
        "local": datetime.datetime(2024, 6, 1, 12), "doc": '{"a": null}', "small": 7, "blob": b"\x00\xff",
        "day": datetime.date(2024, 2, 29)}]


def test_parquet_refuses_a_value_its_column_cannot_hold(awkward_pg, pg_connection, tmp_path):
    with pytest.raises(PipelineError, match=r"Row 2, column d: the value 'infinity' does not fit"):
        extract(pg_connection, tmp_path, "parquet", "SELECT id, d FROM awkward ORDER BY id")
    assert not (tmp_path / "out.parquet").exists()


def test_csv_row_by_row_writes_what_copy_writes(awkward_pg, pg_connection, odbc_pg_connection, tmp_path):
    """CRLF lines are not a COPY option: the row-by-row writer must give the same values."""
    names, expected = awkward_pg
    for connection in (pg_connection, odbc_pg_connection):
        path = extract(connection, tmp_path, "csv", "SELECT * FROM awkward ORDER BY id",
                       options=CsvOptions(line_terminator="\r\n"))
        assert_same(names, expected, read_csv(path, names), f"{connection.kind} csv crlf")


def test_excel_keeps_cr_and_decimals_and_tells_json_null_from_null(awkward_pg, pg_connection, tmp_path):
    path = extract(pg_connection, tmp_path, "xlsx", "SELECT t, n, j, jb FROM awkward ORDER BY id")
    sheet = openpyxl.load_workbook(path).active
    assert sheet["A2"].value == "cr_x000D_\nlf"  # the format's escape for CR: Excel shows CR LF
    assert sheet["B2"].value == "12345678901234567.891" and sheet["B2"].data_type == "s"
    assert sheet["C2"].value == "null" and sheet["C6"].value is None  # a JSON null is not a SQL NULL
    assert sheet["A3"].value.startswith("_x005F_x0041_ =1+1 _x0001_ctl")


def test_json_lines_tell_json_null_from_null(awkward_pg, pg_connection, tmp_path):
    path = extract(pg_connection, tmp_path, "jsonl", "SELECT id, j, a FROM awkward ORDER BY id")
    lines = path.read_text().splitlines()
    assert lines[0] == '{"id":1,"j":"null","a":"{1,NULL,3}"}'
    assert lines[4] == '{"id":5,"j":null,"a":null}'


@pytest.mark.parametrize("cut", [False, True])
def test_a_text_too_long_for_an_excel_cell_fails_or_is_cut_with_a_warning(pg_connection, tmp_path, cut):
    query = "SELECT n, CASE WHEN n = 3 THEN repeat('x', 1000000) ELSE 'short' END AS note FROM generate_series(1, 4) n"
    options = CsvOptions(truncate=cut)
    if not cut:
        with pytest.raises(PipelineError, match=r"Row 3, column note: a text of 1,000,000 characters is "
                                                         r"longer than an Excel cell holds \(32,767\)"):
            extract(pg_connection, tmp_path, "xlsx", query, options=options)
        assert not (tmp_path / "out.xlsx").exists()
        return
    result = extract_to_csv(pg_connection.connector(), query, tmp_path / "out.xlsx", options,
                                     progress=lambda rows: None, file_format="xlsx")
    assert result.warnings == ["1 text value longer than an Excel cell holds (32,767 characters) cut to that length"]
    sheet = openpyxl.load_workbook(result.path).active
    assert sheet["B4"].value == "x" * 32_767 and sheet["B5"].value == "short"


# --- MariaDB through ODBC, SQLite ----------------------------------------------------------------------

MARIADB_ROWS = [
    (1, "cr\r\nlf", decimal.Decimal("1234567890123456789.0123456789"), 0.1, datetime.date(2024, 2, 29),
     datetime.datetime(2024, 1, 2, 3, 4, 5, 123456), b"\x00\xff", '{"k": null}'),
    (2, "_x0041_ =1+1 \x01 😀", decimal.Decimal("-0.5"), 1e20, datetime.date(1000, 1, 1),
     datetime.datetime(1899, 12, 31, 23, 59, 59), b"", "null"),
    (3, "", decimal.Decimal("12.5"), -0.0, None, None, None, None),
    (4, None, None, None, None, None, None, None),
]


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "xlsx", "parquet", "fixed"])
def test_mariadb_every_value_in_every_format(odbc_mariadb_connection, tmp_path, file_format):
    import pyodbc

    connection = odbc_mariadb_connection
    db = pyodbc.connect(connection.connector().connection_string(), autocommit=True)
    db.execute("DROP TABLE IF EXISTS awkward")
    db.execute("CREATE TABLE awkward (id int, t text, n decimal(38,10), f double, d date, ts datetime(6), bin blob, "
               "j json)")
    db.cursor().executemany("INSERT INTO awkward VALUES (?, ?, ?, ?, ?, ?, ?, ?)", MARIADB_ROWS)
    names = ["id", "t", "n", "f", "d", "ts", "bin", "j"]
    expected = [list(row) for row in db.execute(
        "SELECT CAST(id AS CHAR), t, CAST(n AS CHAR), CAST(f AS CHAR), CAST(d AS CHAR), CAST(ts AS CHAR), "
        "CASE WHEN bin IS NOT NULL THEN CONCAT('\\\\x', LOWER(HEX(bin))) END, j FROM awkward ORDER BY id")]
    db.close()
    names, expected = without_line_breaks(names, expected, file_format)
    path = extract(connection, tmp_path, file_format, f"SELECT {', '.join(names)} FROM awkward ORDER BY id",
                   options=fixed_options(names) if file_format == "fixed" else CsvOptions())
    assert_same(names, expected, READERS[file_format](path, names), f"mariadb {file_format}")


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "xlsx", "parquet", "fixed"])
def test_sqlite_every_value_in_every_format(sqlite_db, tmp_path, file_format):
    import sqlite3

    sqlite_db.execute("CREATE TABLE awkward (id INTEGER, t TEXT, x REAL, i INTEGER, bin BLOB)")
    sqlite_db.execute("INSERT INTO awkward VALUES (?, ?, ?, ?, ?)", [
        (1, "cr\r\nlf", 0.1, 2 ** 62, b"\x00\xff"), (2, "_x0041_ =1+1 \x01 😀", 1e20, -(10 ** 15), b""),
        (3, "", -0.5, 0, None), (4, None, None, None, None)])
    names = ["id", "t", "x", "i", "bin"]
    db = sqlite3.connect(sqlite_db.path)
    expected = [list(row) for row in db.execute(
        "SELECT CAST(id AS TEXT), t, CAST(x AS TEXT), CAST(i AS TEXT), "
        "CASE WHEN bin IS NOT NULL THEN '\\x' || lower(hex(bin)) END FROM awkward ORDER BY id")]
    db.close()
    names, expected = without_line_breaks(names, expected, file_format)
    path = extract(sqlite_db, tmp_path, file_format, f"SELECT {', '.join(names)} FROM awkward ORDER BY id",
                   options=fixed_options(names) if file_format == "fixed" else CsvOptions())
    assert_same(names, expected, READERS[file_format](path, names), f"sqlite {file_format}")


def without_line_breaks(names, expected, file_format):
    """Fixed width refuses a line break (it would split the record): the text column t is left out there, and
    an empty string reads back as NULL (a field of padding only)."""
    if file_format != "fixed":
        return names, expected
    kept = [name for name in names if name != "t"]
    return kept, [[row[names.index(name)] or None for name in kept] for row in expected]


# --- fixed width: every column but the text holding line breaks (refused there: it would split the record) -----

@pytest.mark.parametrize("path", ["native", "native bound", "odbc", "odbc bound"])
def test_postgresql_every_value_in_fixed_width(awkward_pg, pg_connection, odbc_pg_connection, tmp_path, path):
    names, expected = awkward_pg
    kept = [name for name in names if name != "t"]
    expected = [[row[names.index(name)] or None for name in kept] for row in expected]
    connection = odbc_pg_connection if path.startswith("odbc") else pg_connection
    mark = "?" if path.startswith("odbc") else "%s"
    query = f"SELECT {', '.join(kept)} FROM awkward" + (f" WHERE id > {mark}" if path.endswith("bound") else "")
    file = extract(connection, tmp_path, "fixed", query + " ORDER BY id", [0] if path.endswith("bound") else None,
                   options=fixed_options(kept))
    assert_same(kept, expected, read_fixed(file, kept), f"{path} fixed width")
