"""Each pipeline step alone, on plain data."""
import datetime
import decimal
import io
import uuid

import pytest

from connections.models import Connection
from runs.errors import PipelineError
from runs.extract import _portable_path, extract_to_csv, render_query
from runs.files import checksum, output_name
from runs.formats import CsvOptions, CsvWriter, format_value
from tests.servers import postgres as pg
from tests import factories


def test_output_name_defaults_to_the_task_name_and_refuses_folders():
    assert output_name("", "Orders / daily (EU)") == "Orders_daily_EU.csv"
    assert output_name(" report.txt ", "x") == "report.txt"
    with pytest.raises(PipelineError, match="may not contain a folder"):
        output_name("../etc/passwd", "x")


def test_render_query_refuses_an_empty_query():
    with pytest.raises(PipelineError, match="no query"):
        render_query("  \n ")


def test_checksum_reads_size_md5_and_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello\n")
    assert checksum(path) == (6, "b1946ac92492d2347c6235b4d2611184",
                              "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")


@pytest.mark.parametrize("value, text", [
    (None, None), ("", ""), (True, "true"), (False, "false"), (42, "42"), (1.5, "1.5"), (1e20, "1e+20"),
    (123456789012345.0, "123456789012345"), (float("inf"), "Infinity"), (float("nan"), "NaN"),
    (decimal.Decimal("1E+2"), "100"), (decimal.Decimal("12.50"), "12.50"),
    (datetime.date(2024, 2, 29), "2024-02-29"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.timezone.utc), "2024-01-02 03:04:05.12+00"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))),
     "2024-01-02 03:04:05-05:30"),
    (b"\x00\xff", "\\x00ff"), ({"a": [1, "é"]}, '{"a": [1, "é"]}'),
    (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
])
def test_every_value_has_one_text_form(value, text):
    assert format_value(value) == text


def test_csv_writer_tells_null_from_empty_string_and_honours_options():
    out = io.BytesIO()
    writer = CsvWriter(out, CsvOptions(delimiter="|", line_terminator="\r\n", encoding="utf-8-sig"))
    writer.write_header(["a", "b", "c"])
    writer.write_batch([(1, None, ""), (2, "x|y", True)])
    writer.close()
    assert out.getvalue() == '\ufeffa|b|c\r\n1||""\r\n2|"x|y"|true\r\n'.encode()
    assert writer.rows == 2


@pytest.mark.django_db
def test_progress_is_reported_every_n_rows_on_the_portable_path(tmp_path, organization):
    path = factories.sqlite_database(tmp_path / "n.sqlite3", "CREATE TABLE t (n INTEGER)",
                                     {"t": [(i,) for i in range(7)]})
    source = Connection(organization=organization, kind="sqlite", path=str(path)).connector()
    reports = []
    extract = extract_to_csv(source, "SELECT n FROM t", tmp_path / "out.csv", CsvOptions(),
                                      progress=reports.append, every=3)
    assert reports == [3, 6] and extract.rows == 7
    assert (tmp_path / "out.csv").read_text() == "n\n0\n1\n2\n3\n4\n5\n6\n"


@pytest.fixture
def typed_table(pg_connection):
    pg.create_typed_table(pg_connection.database, "typed")
    return pg_connection


@pytest.mark.django_db
def test_copy_fast_path_and_portable_path_write_identical_bytes(typed_table, tmp_path):
    database = typed_table.connector()
    query = "SELECT * FROM typed ORDER BY i NULLS LAST"
    fast = tmp_path / "fast.csv"
    extract_to_csv(database, query, fast, CsvOptions(), progress=lambda rows: None)
    portable = io.BytesIO()
    _portable_path(database, query, portable, CsvOptions(), lambda rows: None, 1000)
    assert fast.read_bytes() == portable.getvalue()
    assert fast.read_text().splitlines()[1:] == [
        '1,true,12.50,0.1,2024-02-29,2024-01-02 03:04:05.12,2024-01-02 03:04:05+00,\\x00ff,'
        '"{""a"": [1, ""é""]}",12345678-1234-5678-1234-567812345678,plain',
        '2,false,-3,1e+20,1999-12-31,2000-01-01 00:00:00,2024-06-01 10:00:00.5+00,\\x,[],,""',
        ',,,,,,,,,,',
    ]


@pytest.mark.django_db
def test_copy_fast_path_reports_progress_and_counts_rows(pg_connection, tmp_path):
    reports = []
    extract = extract_to_csv(pg_connection.connector(), "SELECT g FROM generate_series(1, 10) g",
                                      tmp_path / "g.csv", CsvOptions(include_headers=False),
                                      progress=reports.append, every=4)
    assert reports == [4, 8] and extract.rows == 10
    assert (tmp_path / "g.csv").read_text() == "".join(f"{n}\n" for n in range(1, 11))


@pytest.mark.django_db
def test_a_statement_without_result_set_is_a_clear_outcome(pg_connection, tmp_path):
    with pytest.raises(PipelineError, match=r"returned no rows to write \(0 rows affected\)"):
        extract_to_csv(pg_connection.connector(), "CREATE TEMP TABLE x (i int)", tmp_path / "x.csv",
                                CsvOptions(), progress=lambda rows: None)
    assert not (tmp_path / "x.csv").exists() and not list(tmp_path.glob(".*part"))


@pytest.mark.django_db
def test_a_query_ending_in_a_comment_still_takes_the_copy_path(pg_connection, tmp_path):
    extract = extract_to_csv(pg_connection.connector(), "SELECT 1 AS one -- the answer",
                                      tmp_path / "c.csv", CsvOptions(), progress=lambda rows: None)
    assert extract.rows == 1 and (tmp_path / "c.csv").read_text() == "one\n1\n"
