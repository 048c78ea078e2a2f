"""Output formats: CSV options, Excel and JSON Lines, one form per value on every engine, re-writing files."""
import datetime
import decimal
import io
import json

import openpyxl
import pytest

from connections.protocols import ConnectorError
from runs.errors import PipelineError
from runs.extract import _portable_path, extract_to_csv
from runs.formats import CsvOptions, CsvWriter, JsonLinesWriter, parse_delimiter
from runs.rewrite import rewrite_file
from runs.xlsx import XlsxWriter

HEADER = ["id", "name", "amount", "ratio", "note", "empty"]
ROWS = [(1, "Smith, John", decimal.Decimal("12.50"), 0.25, None, ""),
        (2, 'say "hi"', decimal.Decimal("-3"), 1e20, "é", "x")]


def csv_bytes(options, header=HEADER, rows=ROWS):
    out = io.BytesIO()
    writer = CsvWriter(out, options)
    writer.write_header(header)
    writer.write_batch(rows)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("typed, delimiter", [(",", ","), ("\\t", "\t"), ("tab", "\t"), ("|", "|"),
                                              ("pipe", "|"), (";", ";"), ("~", "~")])
def test_delimiters_a_user_can_type(typed, delimiter):
    assert parse_delimiter(typed) == delimiter


def test_a_delimiter_of_several_characters_is_refused():
    with pytest.raises(ConnectorError, match="must be one character"):
        parse_delimiter("||")


@pytest.mark.parametrize("quoting, expected", [
    ("minimal", 'id,name,amount,ratio,note,empty\n1,"Smith, John",12.50,0.25,,""\n2,"say ""hi""",-3,1e+20,é,x\n'),
    ("all", '"id","name","amount","ratio","note","empty"\n"1","Smith, John","12.50","0.25",,""\n'
            '"2","say ""hi""","-3","1e+20","é","x"\n'),
    ("nonnumeric", '"id","name","amount","ratio","note","empty"\n1,"Smith, John",12.50,0.25,,""\n'
                   '2,"say ""hi""",-3,1e+20,"é","x"\n'),
    ("none", 'id,name,amount,ratio,note,empty\n1,Smith\\, John,12.50,0.25,,\n2,say \\"hi\\",-3,1e+20,é,x\n'),
])
def test_quoting_levels_keep_null_an_empty_unquoted_field(quoting, expected):
    assert csv_bytes(CsvOptions(quoting=quoting)).decode() == expected


@pytest.mark.parametrize("rows, expected", [
    # With an empty string in the batch (marked) and without; a CR LF inside a value stays as it is.
    ([(1, "cr\rhere", ""), (2, "plain", "x")], '1,"cr\rhere",""\n2,plain,x\n'),
    ([(1, "cr\rhere", "a"), (2, 'both\r\n"q"', None)], '1,"cr\rhere",a\n2,"both\r\n""q""",\n'),
])
def test_a_value_holding_a_carriage_return_is_quoted_whatever_the_terminator(rows, expected):
    assert csv_bytes(CsvOptions(), header=["id", "text", "other"], rows=rows).decode() == "id,text,other\n" + expected


def test_pipe_delimited_crlf_cp1252():
    data = csv_bytes(CsvOptions(delimiter="|", line_terminator="\r\n", encoding="cp1252"))
    expected = 'id|name|amount|ratio|note|empty\r\n1|Smith, John|12.50|0.25||""\r\n2|"say ""hi"""|-3|1e+20|é|x\r\n'
    assert data == expected.encode("cp1252")
    assert b"\xe9" in data  # é is one byte in Windows-1252


def test_tab_delimited_with_bom_and_no_header():
    data = csv_bytes(CsvOptions(delimiter="\t", encoding="utf-8-sig", include_headers=False))
    assert data.startswith(b"\xef\xbb\xbf1\tSmith, John\t12.50")


@pytest.mark.django_db
def test_a_character_cp1252_cannot_hold_is_a_clear_error(sqlite_db, tmp_path):
    sqlite_db.execute("CREATE TABLE t (name TEXT); INSERT INTO t VALUES ('ok'), ('日本');")
    with pytest.raises(PipelineError, match=r"holds '日' \(U\+65E5\), which cp1252 cannot hold"):
        extract_to_csv(sqlite_db.connector(), "SELECT name FROM t", tmp_path / "t.csv",
                                CsvOptions(encoding="cp1252"), progress=lambda rows: None)
    assert not (tmp_path / "t.csv").exists()


def test_excel_keeps_types_and_never_runs_data_as_a_formula(tmp_path):
    path = tmp_path / "out.xlsx"
    with open(path, "wb") as out:
        writer = XlsxWriter(out, CsvOptions())
        writer.write_header(["n", "amount", "day", "at", "flag", "blob", "zoned", "text", "nothing", "big"])
        writer.write_batch([(7, decimal.Decimal("12.50"), datetime.date(2024, 2, 29),
                             datetime.datetime(2024, 1, 2, 3, 4, 5), True, b"\x00\xff",
                             datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                             "=1+1", None, 12345678901234567890)])
        writer.close()
    sheet = openpyxl.load_workbook(path).active
    header, row = list(sheet.iter_rows(values_only=True))
    assert header == ("n", "amount", "day", "at", "flag", "blob", "zoned", "text", "nothing", "big")
    assert sheet["A1"].font.b
    assert row == (7, 12.5, datetime.datetime(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5), True,
                   "\\x00ff", "2024-01-02 03:04:05+00", "=1+1", None, "12345678901234567890")
    assert sheet["C2"].number_format == "yyyy-mm-dd" and sheet["H2"].data_type == "s"


def test_json_lines_keep_numbers_exact_and_null_as_null():
    out = io.BytesIO()
    writer = JsonLinesWriter(out, CsvOptions())
    writer.write_header(["id", "amount", "day", "blob", "ok", "id", "doc"])
    writer.write_batch([(1, decimal.Decimal("12.50"), datetime.date(2024, 2, 29), b"\x01", False, None,
                         {"a": [1, "é"]}), (2, decimal.Decimal("1E+2"), None, None, True, 3, None)])
    writer.close()
    lines = out.getvalue().decode().splitlines()
    assert lines[0] == ('{"id":1,"amount":12.50,"day":"2024-02-29","blob":"\\\\x01","ok":false,"id_2":null,'
                        '"doc":{"a": [1, "é"]}}')
    assert json.loads(lines[1]) == {"id": 2, "amount": 100, "day": None, "blob": None, "ok": True, "id_2": 3,
                                    "doc": None}
    assert writer.rows == 2


def test_rewrite_semicolon_cp1252_to_pipe_utf8_crlf(tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes('id;name;note\r\n1;"Müller; Sohn";\r\n2;Zoë;"a|b"\r\n3;short\r\n'.encode("cp1252"))
    target = tmp_path / "out.csv"
    rows, encoding, delimiter = rewrite_file(source, target, CsvOptions(delimiter="|", line_terminator="\r\n"))
    assert (rows, encoding, delimiter) == (3, "cp1252", ";")
    assert target.read_bytes() == 'id|name|note\r\n1|Müller; Sohn|\r\n2|Zoë|"a|b"\r\n3|short\r\n'.encode()


def test_rewrite_can_drop_the_header_and_quote_non_numeric_fields(tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbfid,code,amount\n1,00123,4.50\n2,,x\n")
    target = tmp_path / "out.csv"
    rewrite_file(source, target, CsvOptions(quoting="nonnumeric", include_headers=False))
    # A code with leading zeros is text, not a number: it stays quoted.
    assert target.read_text() == '1,"00123",4.50\n2,,"x"\n'


@pytest.mark.django_db
@pytest.mark.parametrize("quoting", ["minimal", "all"])
def test_copy_and_the_portable_path_agree_for_every_quoting_level_copy_can_do(pg_connection, tmp_path, quoting):
    database = pg_connection.connector()
    query = ("SELECT * FROM (VALUES (1, 'a,b', NULL::numeric, ''), (2, NULL, 1.50, 'x')) AS t(id, s, n, e) "
             "ORDER BY id")
    options = CsvOptions(quoting=quoting, delimiter=";")
    fast = tmp_path / "fast.csv"
    extract_to_csv(database, query, fast, options, progress=lambda rows: None)
    portable = io.BytesIO()
    _portable_path(database, query, portable, options, lambda rows: None, 1000)
    assert fast.read_bytes() == portable.getvalue()


# --- fixed width ------------------------------------------------------------------------------------------

LAYOUT = "5 right 0\n10\n8 left space %Y%m%d\n9 right space .2f"


def fixed_bytes(rows, **options):
    from runs.fixed_width import FixedWidthWriter

    out = io.BytesIO()
    writer = FixedWidthWriter(out, CsvOptions(layout=LAYOUT, **options))
    writer.write_header(["id", "name", "day", "amount"])
    writer.write_batch(rows)
    writer.close()
    return out.getvalue(), writer


def test_fixed_width_places_every_column_with_its_padding_and_format():
    data, writer = fixed_bytes([(1, "Zoë", datetime.date(2024, 2, 29), decimal.Decimal("12.5")),
                                (22, None, None, -3.456)], line_terminator="\r\n", encoding="cp1252")
    assert data == "00001Zoë       20240229    12.50\r\n00022                      -3.46\r\n".encode("cp1252")
    assert writer.rows == 2 and writer.warnings == []


def test_fixed_width_refuses_a_value_longer_than_its_column_or_cuts_it_when_asked():
    rows = [(1, "short", None, None), (2, "much too long", None, None)]
    with pytest.raises(PipelineError, match=r"Row 2, column name: the value 'much too long' has 13 "
                                                     r"characters, more than the column's width \(10\)"):
        fixed_bytes(rows)
    data, writer = fixed_bytes(rows, truncate=True)
    assert data.decode().splitlines()[1] == "00002much too l" + " " * 17
    assert writer.warnings == ["1 value longer than the fixed-width column cut to its width"]


def test_fixed_width_refuses_a_line_break_and_a_layout_that_does_not_fit():
    from runs.fixed_width import FixedWidthWriter, parse_layout

    with pytest.raises(PipelineError, match="Row 1, column name: the value holds a line break"):
        fixed_bytes([(1, "a\r\nb", None, None)])
    with pytest.raises(PipelineError, match="returns 2 columns but the fixed-width layout has 4 lines"):
        FixedWidthWriter(io.BytesIO(), CsvOptions(layout=LAYOUT)).write_header(["a", "b"])
    with pytest.raises(PipelineError, match=r"Layout line 2 \('wide'\): start with the column's width"):
        parse_layout("3\nwide")
    with pytest.raises(PipelineError, match="unknown date code %Q"):
        parse_layout("8 left space %Y%Q")


@pytest.mark.django_db
def test_a_fixed_width_extract_from_sqlite(sqlite_db, tmp_path):
    sqlite_db.execute("CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1, 'Ada'), (2, NULL);")
    path = tmp_path / "out.txt"
    extract = extract_to_csv(sqlite_db.connector(), "SELECT * FROM t ORDER BY id", path,
                                      CsvOptions(layout="3 right zero\n5"), progress=lambda rows: None,
                                      file_format="fixed")
    assert (extract.rows, path.read_bytes()) == (2, b"001Ada  \n002     \n")


@pytest.mark.parametrize("file_format", ["parquet", "fixed"])
def test_a_ragged_file_rewritten_as_parquet_or_fixed_width_fails_naming_the_row(tmp_path, file_format):
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,name\n1,Ada\n2\n")
    with pytest.raises(PipelineError, match=r"Row 2 has 1 values but the (file has 2 columns|fixed-width "
                                                     r"layout has 2 lines)"):
        rewrite_file(source, tmp_path / "out", CsvOptions(layout="3\n5"), file_format)
