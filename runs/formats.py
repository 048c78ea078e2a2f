"""Writing rows to files (CSV, Excel, JSON Lines), the same way whatever engine they came from.

One text form for every value: NULL is an empty unquoted field, an empty string is `""`, booleans are
true/false, timestamps are `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]`, decimals never use an exponent,
binary is `\\x` + hex. PostgreSQL's COPY writes exactly these forms, which is why the fast path and this
portable path produce the same bytes.

Excel (runs/xlsx.py) keeps numbers, dates and booleans as typed cells and writes what Excel cannot hold
exactly as text; JSON Lines keeps numbers, booleans and NULL as JSON values and the rest in the text form
(json columns too: a JSON `null` is the string "null", SQL NULL is null); Parquet (runs/parquet.py) and
fixed width (runs/fixed_width.py) are described there. The README's table lists each type per format.
"""
import csv
import datetime
import decimal
import io
import itertools
import json
import math
import uuid
from dataclasses import dataclass

from connections.protocols import ConnectorError

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "nonnumeric": csv.QUOTE_NONNUMERIC,
           "none": csv.QUOTE_NONE}
LINE_TERMINATORS = {"lf": "\n", "crlf": "\r\n"}
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t", "pipe": "|", "comma": ",", "semicolon": ";"}
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "parquet": "parquet", "fixed": "txt"}
PASS_THROUGH = {str, int, type(None)}  # NumericText joins them below
# Stand in for an empty string / a NULL while the csv module writes a batch, then become `""` / nothing.
EMPTY_MARK = "\x1e\x1f\x1e"
NULL_MARK = "\x1e\x1d\x1e"


class NumericText(str):
    """The text form of a number: csv's QUOTE_NONNUMERIC leaves it unquoted, as it would the number."""

    __slots__ = ()

    def __float__(self):  # its presence is what csv checks (PyNumber_Check); the value is never used
        return 0.0


NULL_NUMERIC = NumericText("")
PASS_THROUGH.add(NumericText)


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quoting: str = "minimal"
    line_terminator: str = "\n"
    encoding: str = "utf-8"
    include_headers: bool = True
    # Cut a value longer than the format holds (an Excel cell, a fixed-width column), counted in a warning,
    # instead of failing the run.
    truncate: bool = False
    compression: str = "snappy"  # Parquet
    layout: str = ""  # fixed width: one line per column (runs/fixed_width.py)

    @classmethod
    def for_task(cls, task):
        return cls(
            delimiter=parse_delimiter(task.csv_delimiter),
            quoting=task.csv_quoting if task.csv_quoting in QUOTING else "minimal",
            line_terminator=LINE_TERMINATORS.get(task.line_terminator, "\n"),
            encoding=task.encoding or "utf-8",
            include_headers=task.include_headers,
            truncate=getattr(task, "cut_long_values", False),
            compression=getattr(task, "parquet_compression", "") or "snappy",
            layout=getattr(task, "fixed_width_layout", ""),
        )


def parse_delimiter(text):
    """The delimiter a user typed: a character, `\\t`, or a name (tab, pipe, comma, semicolon)."""
    text = text or ","
    named = DELIMITER_NAMES.get(text.strip().lower())
    if named:
        return named
    if len(text) != 1:
        raise ConnectorError(f"The delimiter {text!r} must be one character (or \\t, tab, pipe)", step="settings")
    return text


def _offset(value):
    offset = value.utcoffset()
    if offset is None:
        return ""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}" + (f":{minutes:02d}" if minutes else "")


def _fraction(value):
    return (".%06d" % value.microsecond).rstrip("0") if value.microsecond else ""


def _float_text(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _decimal_text(value):
    text = str(value)  # much faster than format(); only exponents need the slow form
    if "E" in text:
        return "NaN" if value.is_nan() else format(value, "f")
    return text


def _datetime_text(value):
    if value.tzinfo is None and not value.microsecond:
        return value.isoformat(" ")
    return value.replace(tzinfo=None).isoformat(" ", "seconds") + _fraction(value) + _offset(value)


def _time_text(value):
    return value.replace(tzinfo=None).isoformat("seconds") + _fraction(value) + _offset(value)


def _bytes_text(value):
    return "\\x" + bytes(value).hex()


def _json_text(value):
    return json.dumps(value, ensure_ascii=False)


CONVERTERS = {
    bool: lambda value: "true" if value else "false",
    float: _float_text,
    decimal.Decimal: _decimal_text,
    datetime.datetime: _datetime_text,
    datetime.date: datetime.date.isoformat,
    datetime.time: _time_text,
    bytes: _bytes_text, bytearray: _bytes_text, memoryview: _bytes_text,
    dict: _json_text, list: _json_text,
    uuid.UUID: str,
}
NUMERIC_TYPES = (float, decimal.Decimal)


def format_value(value):
    """The text form of one value (see the module docstring); None stays None."""
    if value is None or type(value) is str:
        return value
    converter = CONVERTERS.get(type(value))
    if converter is not None:
        return converter(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    for kind, converter in CONVERTERS.items():  # subclasses (e.g. a driver's own datetime)
        if isinstance(value, kind):
            return converter(value)
    return str(value)


BOOL_TEXT = {True: "true", False: "false"}


# Whole-column converters for the common types: C-level maps where the plain text is already right, the
# per-value form only when a column holds a value that needs it (non-finite floats, fractions, zones).
def _float_column(column):
    if not all(map(math.isfinite, column)):
        return [_float_text(value) for value in column]
    return [text[:-2] if text[-2:] == ".0" else text for text in map(float.__repr__, column)]


def _datetime_column(column):
    texts = list(map(datetime.datetime.isoformat, column, itertools.repeat(" ")))
    if set(map(len, texts)) != {19}:
        return [_datetime_text(value) for value in column]
    return texts


COLUMN_CONVERTERS = {
    bool: lambda column: list(map(BOOL_TEXT.__getitem__, column)),
    float: _float_column,
    datetime.datetime: _datetime_column,
    datetime.date: lambda column: list(map(datetime.date.isoformat, column)),
}


def _convert_column(column, kinds):
    """The text forms of one column, with one converter for the whole column when it holds one type."""
    kinds.discard(type(None))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        whole = COLUMN_CONVERTERS.get(kind)
        if whole is not None:
            if None not in column:
                return whole(column)
            texts = iter(whole([value for value in column if value is not None]))
            return [None if value is None else next(texts) for value in column]
        converter = CONVERTERS.get(kind)
        if converter is not None:
            return [None if value is None else converter(value) for value in column]
    return list(map(format_value, column))


def normalize_batch(batch, numeric_marks=False):
    """Convert only the columns of a batch whose values are not already in their text form.

    Returns (rows, columns that may hold an empty string, whether any value is NULL). With
    `numeric_marks`, numbers come out as NumericText (for QUOTE_NONNUMERIC) and NULLs as an unquoted
    empty field.
    """
    if len(set(map(len, batch))) > 1:
        # Ragged rows (a re-written file): convert row by row; one flat "column" serves the caller's checks.
        convert = _numeric_mark if numeric_marks else format_value
        rows = [tuple(map(convert, row)) for row in batch]
        flat = tuple(value for row in rows for value in row)
        return rows, [flat], None in flat
    columns = list(zip(*batch))
    changed, texts, has_null = False, [], False
    for index, column in enumerate(columns):
        kinds = set(map(type, column))
        has_null = has_null or type(None) in kinds
        if numeric_marks and not kinds <= {str}:
            columns[index] = tuple(_numeric_mark(value) for value in column)
            changed = True
        elif not kinds <= PASS_THROUGH:
            # Only text, and values of types without a converter, can come out as an empty string.
            if not kinds - {type(None)} <= CONVERTERS.keys():
                texts.append(index)
            columns[index] = _convert_column(column, kinds)
            changed = True
        if str in kinds:
            texts.append(index)
    return (list(zip(*columns)) if changed else batch), [columns[index] for index in texts], has_null


def _numeric_mark(value):
    if value is None:
        return NULL_NUMERIC
    if isinstance(value, str):
        return value
    text = format_value(value)
    if isinstance(value, NUMERIC_TYPES) or (isinstance(value, int) and not isinstance(value, bool)):
        return NumericText(text)
    return text


class CsvWriter:
    """Streams batches of rows to a binary file; counts data rows."""

    extension = "csv"

    def __init__(self, out, options):
        self.options = options
        self.rows = 0
        self._text = io.TextIOWrapper(out, encoding=options.encoding, newline="", write_through=False)
        kwargs = {"delimiter": options.delimiter, "quoting": QUOTING[options.quoting],
                  "lineterminator": options.line_terminator}
        if options.quoting == "none":
            kwargs["escapechar"] = "\\"
        self._kwargs = kwargs
        self._writer = csv.writer(self._text, **kwargs)

    def write_header(self, columns):
        if self.options.include_headers:
            self._writer.writerow(columns)

    def write_batch(self, batch):
        quoting = self.options.quoting
        rows, text_columns, has_null = normalize_batch(batch, numeric_marks=quoting == "nonnumeric")
        # csv quotes a value holding a carriage return only when the line terminator holds one too; COPY
        # (and every reader that takes a lone CR for a line break) needs it quoted whatever the terminator.
        bare_cr = quoting == "minimal" and "\r" not in self.options.line_terminator and any(
            "\r" in value for column in text_columns for value in column if isinstance(value, str))
        if quoting == "minimal" and any("" in column for column in text_columns):
            # The csv module writes "" and None alike; mark empty strings so they come out quoted.
            rows = [tuple(EMPTY_MARK if value == "" else value for value in row) for row in rows]
            self._write_marked(rows, EMPTY_MARK, '""', bare_cr)
        elif quoting == "all" and has_null:
            # Like COPY's FORCE_QUOTE *: every value quoted except NULL, which stays an empty field.
            rows = [tuple(NULL_MARK if value is None else value for value in row) for row in rows]
            self._write_marked(rows, f'"{NULL_MARK}"', "")
        elif bare_cr:
            self._write_marked(rows, None, None, bare_cr)
        else:
            self._writer.writerows(rows)
        self.rows += len(batch)

    def _write_marked(self, rows, mark, replacement, bare_cr=False):
        buffer = io.StringIO()
        if bare_cr:
            self._write_quoting_cr(buffer, rows)
        else:
            csv.writer(buffer, **self._kwargs).writerows(rows)
        text = buffer.getvalue()
        self._text.write(text.replace(mark, replacement) if mark else text)

    def _write_quoting_cr(self, buffer, rows):
        """Rows holding a carriage return go through a writer whose terminator ends in CR LF, so it quotes
        them; their terminator is then put back."""
        plain = csv.writer(buffer, **self._kwargs)
        terminator = self.options.line_terminator
        scratch = io.StringIO()
        quoting_cr = csv.writer(scratch, **{**self._kwargs, "lineterminator": "\r\n"})
        for row in rows:
            if any(isinstance(value, str) and "\r" in value for value in row):
                scratch.seek(0)
                scratch.truncate()
                quoting_cr.writerow(row)
                buffer.write(scratch.getvalue()[:-2] + terminator)
            else:
                plain.writerow(row)

    def close(self):
        self._text.flush()
        self._text.detach()


class JsonLinesWriter:
    """One JSON object per row, UTF-8, LF: `{"column": value, ...}`. Headers are the keys, never a line."""

    extension = "jsonl"

    def __init__(self, out, options):
        self.options = options
        self.rows = 0
        self._out = out
        self._keys = []

    def write_header(self, columns):
        seen, keys = {}, []
        for name in columns:
            name = str(name)
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        self._keys = [json.dumps(key, ensure_ascii=False) + ":" for key in keys]

    def write_batch(self, batch):
        widest = max(map(len, batch), default=0)
        while len(self._keys) < widest:  # a row longer than the header: its extra values get names too
            self._keys.append(json.dumps(f"column_{len(self._keys) + 1}") + ":")
        keys, encode = self._keys, _json_value
        lines = ["{" + ",".join([key + encode(value) for key, value in zip(keys, row)]) + "}\n" for row in batch]
        self._out.write("".join(lines).encode("utf-8"))
        self.rows += len(batch)

    def close(self):
        pass


def _json_value(value):
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return json.dumps(value, ensure_ascii=False)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float or kind is decimal.Decimal:
        text = format_value(value)
        return text if text not in ("NaN", "Infinity", "-Infinity") else json.dumps(text)
    if kind is dict or kind is list:
        return json.dumps(value, ensure_ascii=False, default=format_value)
    return json.dumps(format_value(value), ensure_ascii=False)
