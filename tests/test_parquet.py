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
    query = ("SELECT n, CASE WHEN n = 3 THEN 'NaN' ELSE n::numeric END::numeric(5,2) AS amount FROM generate_series(1, 4) n"
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
