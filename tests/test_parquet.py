"""Parquet's typed columns from PostgreSQL, natively (through COPY) and through ODBC: numeric precision and
scale, values that do not fit, and row numbers past the first row group. tests/test_every_value.py checks
every value of the awkward table."""
import decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runs.errors import PipelineError
from runs.extract import extract_to_csv
from runs.formats import CsvOptions

pytestmark = pytest.mark.django_db

NUMERICS = ("SELECT 12.50::numeric(12,2) AS amount, 1.5::numeric AS plain, 1::numeric(50,2) AS wide, "
            "12000::numeric(2,-3) AS negative_scale, 0.001::numeric(3,5) AS small, "
            "(-99999999999999999999999999999999999999)::numeric(38,0) AS widest")


def extract(connection, tmp_path, query, params=None):
    path = tmp_path / "out.parquet"
    return extract_to_csv(connection.connector(), query, path, CsvOptions(), progress=lambda rows: None,
                          file_format="parquet", params=params)


@pytest.fixture(params=["native", "odbc"])
def postgres(request, pg_connection, odbc_pg_connection):
    return pg_connection if request.param == "native" else odbc_pg_connection


def test_numeric_with_precision_and_scale_is_a_parquet_decimal_others_their_text(postgres, tmp_path):
    table = pq.read_table(extract(postgres, tmp_path, NUMERICS).path)
    assert table.schema.types == [pa.decimal128(12, 2), pa.string(), pa.string(), pa.string(), pa.string(),
                                  pa.decimal128(38, 0)]
    assert table.to_pylist() == [{"amount": decimal.Decimal("12.50"), "plain": "1.5", "wide": "1.00",
                                  "negative_scale": "12000", "small": "0.00100",
                                  "widest": decimal.Decimal("-99999999999999999999999999999999999999")}]


def test_plain_numeric_through_odbc_stays_a_number_in_json_lines(odbc_pg_connection, tmp_path):
    """ODBC reads plain numeric as its text (to tell it from numeric(p,s)); the other formats still see a number."""
    path = tmp_path / "out.jsonl"
    extract_to_csv(odbc_pg_connection.connector(), "SELECT 1.50::numeric AS plain, 2.5::numeric(4,2) AS typed, "
                   "'NaN'::numeric AS nan", path, CsvOptions(), progress=lambda rows: None, file_format="jsonl")
    assert path.read_text() == '{"plain":1.50,"typed":2.50,"nan":"NaN"}\n'


@pytest.mark.parametrize("bound", [False, True])
def test_a_decimal_that_does_not_fit_fails_naming_row_and_column(postgres, tmp_path, bound):
    mark = "?" if postgres.kind == "odbc" else "%s"
    query = ("SELECT n, CASE WHEN n = 3 THEN 'NaN' ELSE n::numeric END::numeric(5,2) AS amount "
             "FROM generate_series(1, 4) n"
             + (f" WHERE n > {mark}" if bound else ""))
    with pytest.raises(PipelineError, match=r"Row 3, column amount: the value 'NaN' does not fit the Parquet "
                                            r"column's type decimal128\(5, 2\)"):
        extract(postgres, tmp_path, query, [0] if bound else None)
    assert not list(tmp_path.glob("*out.parquet*"))  # neither the file nor its partial copy


def test_rows_are_counted_across_row_groups_and_a_late_bad_value_leaves_no_file(pg_connection, tmp_path):
    query = ("SELECT g AS id, CASE WHEN g = 150001 THEN 'infinity' ELSE '2024-01-01' END::date AS day "
             "FROM generate_series(1, 200000) g")
    with pytest.raises(PipelineError, match=r"^Row 150,001, column day: the value 'infinity' does not fit"):
        extract(pg_connection, tmp_path, query)
    assert not list(tmp_path.glob("*out.parquet*"))
    result = extract(pg_connection, tmp_path, query.replace("150001", "0"))
    parquet = pq.ParquetFile(result.path)
    assert result.rows == 200_000 and parquet.metadata.num_rows == 200_000
    assert [parquet.metadata.row_group(index).num_rows for index in range(parquet.num_row_groups)] == [100_000] * 2
    assert parquet.read(columns=["id"]).column("id").to_pylist()[-3:] == [199_998, 199_999, 200_000]


@pytest.mark.parametrize("column", ["g", "g::text", "NULL::text"])
def test_a_one_column_row_holding_null_is_kept(postgres, tmp_path, column):
    """COPY writes such a row as an empty line, which a CSV reader skips unless told not to."""
    query = f"SELECT CASE WHEN g % 2 = 0 THEN NULL ELSE {column} END AS x FROM generate_series(1, 5) g"
    result = extract(postgres, tmp_path, query)
    values = pq.read_table(result.path).column("x").to_pylist()
    assert result.rows == 5 and len(values) == 5 and values[1] is None and values[3] is None
    assert values[0] == {"g": 1, "g::text": "1", "NULL::text": None}[column]


def test_compression_option_is_used(pg_connection, tmp_path):
    path = tmp_path / "out.parquet"
    extract_to_csv(pg_connection.connector(), "SELECT g FROM generate_series(1, 10) g", path,
                   CsvOptions(compression="zstd"), progress=lambda rows: None, file_format="parquet")
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_table(path).column("g").to_pylist() == list(range(1, 11))


EDGE_QUERIES = {
    "one text column": "SELECT x FROM (VALUES (''), (NULL), ('\\.'), (E'\\r'), (E'a\\nb'), ('\"q\",')) v(x)",
    "repeated and odd names": 'SELECT 1 AS id, 2 AS id, 3 AS "a b", 4 AS "qu""ote", 5 AS "é"',
    "no rows": "SELECT g, g::text AS t, 1.5::numeric(4,2) AS n FROM generate_series(1, 0) g",
    "a value longer than a read block": "SELECT repeat('x', 3000000) AS big, 1 AS n",
    "number limits": ("SELECT (-32768)::int2 AS s, 2147483647::int4 AS i, (-9223372036854775808)::int8 AS b, "
                      "'-0'::float8 AS z, '1.1'::float4 AS f4, '3.4028235e38'::float4 AS f4max, "
                      "'4.9e-324'::float8 AS tiny, 0.00000000000000000000000000000000000001::numeric(38,38) AS d, "
                      "4294967295::oid AS o"),
    "date and time limits": ("SELECT '0001-01-01'::date AS d, '9999-12-31 23:59:59.999999'::timestamp AS ts, "
                             "'0001-01-01 00:00:00+00'::timestamptz AS tz, '23:59:59.999999'::time AS t, "
                             "'1999-12-31 23:59:59.5-08'::timestamptz AS zoned"),
    "bytea": "SELECT '\\x'::bytea AS empty, '\\x00ff0a0d22'::bytea AS bytes, NULL::bytea AS missing",
}


@pytest.mark.parametrize("query", EDGE_QUERIES.values(), ids=EDGE_QUERIES.keys())
def test_copy_and_row_by_row_write_the_same_parquet_for_edge_values(pg_connection, tmp_path, query, monkeypatch):
    from connections.protocols.postgres import PostgresDatabase
    from runs.extract import _portable_path
    from runs.parquet import ParquetWriter

    with monkeypatch.context() as patch:  # the COPY path alone
        patch.setattr(PostgresDatabase, "execute", lambda *args: pytest.fail("read row by row"))
        copied = pq.read_table(extract(pg_connection, tmp_path, query).path)
    with open(tmp_path / "values.parquet", "wb") as out:
        _portable_path(pg_connection.connector(), query, out, CsvOptions(), lambda rows: None, 100, ParquetWriter)
    by_value = pq.read_table(tmp_path / "values.parquet")
    assert copied.schema == by_value.schema
    assert copied.to_pylist() == by_value.to_pylist()
    if query in EXPECTED:
        assert copied.to_pylist() == EXPECTED[query]


EXPECTED = {
    EDGE_QUERIES["one text column"]: [{"x": value} for value in ("", None, "\\.", "\r", "a\nb", '"q",')],
    EDGE_QUERIES["repeated and odd names"]: [{"id": 1, "id_2": 2, "a b": 3, 'qu"ote': 4, "é": 5}],
    EDGE_QUERIES["bytea"]: [{"empty": b"", "bytes": b"\x00\xff\n\r\"", "missing": None}],
}


def test_odbc_numeric_stays_text_when_the_connection_chooses_its_own_numeric_as(odbc_pg_connection, tmp_path):
    """Without NumericAs=12 psqlODBC declares plain numeric like a numeric(28,6): nothing tells them apart."""
    odbc_pg_connection.options["extra"] = "NumericAs=-101"
    query = "SELECT 12.50::numeric(12,2) AS a, 1.5::numeric AS b"
    table = pq.read_table(extract(odbc_pg_connection, tmp_path, query).path)
    assert table.schema.types == [pa.string(), pa.string()]
    assert table.to_pylist() == [{"a": "12.50", "b": "1.5"}]


def test_the_copy_path_records_the_columns_type_names_as_every_path_does(postgres, tmp_path):
    """A run's column types are compared with the last run's (runs/drift.py), whichever path read the rows."""
    result = extract(postgres, tmp_path, "SELECT 1 AS a, 'x'::text AS b, 1.5::numeric(4,2) AS c, now() AS d")
    assert result.types == ["int4", "text", "numeric", "timestamptz"]
