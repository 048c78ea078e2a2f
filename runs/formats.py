"""Writing rows to files, the same way whatever engine they came from.

One text form for every value: NULL is an empty unquoted field, an empty string is `""`, booleans are
true/false, timestamps are `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]`, decimals never use an exponent,
binary is `\\x` + hex. PostgreSQL's COPY writes exactly these forms, which is why the fast path and this
portable path produce the same bytes.
"""
import csv
import datetime
import decimal
import io
import json
import math
import uuid
from dataclasses import dataclass

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "nonnumeric": csv.QUOTE_NONNUMERIC,
           "none": csv.QUOTE_NONE}
LINE_TERMINATORS = {"lf": "\n", "crlf": "\r\n"}
PASS_THROUGH = {str, int, type(None)}
# Stands in for an empty string while the csv module writes a batch, then becomes `""`.
EMPTY_MARK = "\x1e\x1f\x1e"


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quoting: str = "minimal"
    line_terminator: str = "\n"
    encoding: str = "utf-8"
    include_headers: bool = True

    @classmethod
    def for_task(cls, task):
        return cls(
            delimiter=task.csv_delimiter.replace("\\t", "\t") or ",",
            quoting=task.csv_quoting,
            line_terminator=LINE_TERMINATORS.get(task.line_terminator, "\n"),
            encoding=task.encoding,
            include_headers=task.include_headers,
        )


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


def format_value(value):
    """The text form of one value (see the module docstring); None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else format(value, "f")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + _fraction(value) + _offset(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M:%S") + _fraction(value) + _offset(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def normalize_batch(batch):
    """Convert only the columns of a batch whose values are not already in their text form."""
    columns = list(zip(*batch))
    changed = False
    for index, column in enumerate(columns):
        if not set(map(type, column)) <= PASS_THROUGH:
            columns[index] = tuple(map(format_value, column))
            changed = True
    return (list(zip(*columns)) if changed else batch), columns


class CsvWriter:
    """Streams batches of rows to a binary file; counts data rows."""

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
        rows, columns = normalize_batch(batch)
        if self.options.quoting == "minimal" and any("" in column for column in columns):
            # The csv module writes "" and None alike; mark empty strings so they come out quoted.
            rows = [tuple(EMPTY_MARK if value == "" else value for value in row) for row in rows]
            buffer = io.StringIO()
            csv.writer(buffer, **self._kwargs).writerows(rows)
            self._text.write(buffer.getvalue().replace(EMPTY_MARK, '""'))
        else:
            self._writer.writerows(rows)
        self.rows += len(batch)

    def close(self):
        self._text.flush()
        self._text.detach()
