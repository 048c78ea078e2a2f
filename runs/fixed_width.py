"""Fixed-width output for legacy and EDI feeds: every column at its place, padded to its width.

The task's layout has one line per column, in the query's column order:

    width [left|right] [pad] [format]

`pad` is one character, or `space` / `zero` (default: space; alignment default: left). `format` is a
strftime format for dates and times (`%Y%m%d`) or a Python format for numbers (`.2f`, `d`). NULL is a field
of padding only. No header line is written (such feeds have none); encoding and line ending are the CSV
settings'. A value longer than its width fails the run naming the row and column, or, with the task's
"cut long values" option, is cut to the width and counted in a warning. A value holding a line break fails
the run: it would split the record.
"""
import datetime
from dataclasses import dataclass

from runs.errors import PipelineError
from runs.formats import format_value
from runs.parameters import check_codes

PADS = {"space": " ", "zero": "0"}


@dataclass(frozen=True)
class FixedColumn:
    width: int
    align: str = "left"
    pad: str = " "
    format: str = ""


def parse_layout(text):
    """The layout's columns; raises PipelineError naming the line that is wrong."""

    columns = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 3)
        try:
            width = int(parts[0])
        except ValueError:
            width = 0
        if not 1 <= width <= 100_000:
            raise PipelineError(f"Layout line {number} ({line.strip()!r}): start with the column's width, a whole "
                                "number from 1 to 100000", step="settings")
        align, rest = "left", parts[1:]
        if rest and rest[0].lower() in ("left", "right"):
            align, rest = rest[0].lower(), rest[1:]
        pad = " "
        if rest and (len(rest[0]) == 1 or rest[0].lower() in PADS):
            pad, rest = PADS.get(rest[0].lower(), rest[0]), rest[1:]
        file_format = " ".join(rest)
        if "%" in file_format:
            check_codes(file_format, f"Layout line {number}")
        columns.append(FixedColumn(width, align, pad, file_format))
    if not columns:
        raise PipelineError("A fixed-width file needs its layout: one line per column, e.g. '10 left space'",
                            step="settings")
    return columns


class FixedWidthWriter:
    """Streams batches of rows as fixed-width lines; counts data rows; `warnings` counts cut values."""

    extension = "txt"

    def __init__(self, out, options):
        import io

        self.options = options
        self.rows = 0
        self.warnings = []
        self._cut = 0
        self._layout = parse_layout(options.layout)
        self._names = []
        self._text = io.TextIOWrapper(out, encoding=options.encoding, newline="", write_through=False)

    def write_header(self, columns):

        self._names = [str(name) for name in columns]
        if len(self._names) != len(self._layout):
            raise PipelineError(f"The query returns {len(self._names)} columns but the fixed-width layout has "
                                f"{len(self._layout)} lines: give one line per column", step="settings")

    def write_batch(self, batch):
        terminator = self.options.line_terminator
        lines = []
        for number, row in enumerate(batch, self.rows + 1):
            if len(row) != len(self._layout):

                raise PipelineError(f"Row {number:,} has {len(row)} values but the fixed-width layout has "
                                    f"{len(self._layout)} lines: give one line per column", step="output")
            lines.append("".join([self._field(number, index, value) for index, value in enumerate(row)]) + terminator)
        self._text.write("".join(lines))
        self.rows += len(batch)

    def _field(self, number, index, value):
        column = self._layout[index] if index < len(self._layout) else None
        if column is None:
            self._fail(number, index, "has no line in the layout")
        if value is None:
            return column.pad * column.width
        text = self._text_of(number, index, value, column)
        if "\n" in text or "\r" in text:
            self._fail(number, index, "holds a line break, which would split the fixed-width record")
        if len(text) > column.width:
            if not self.options.truncate:
                self._fail(number, index, f"{text!r} has {len(text):,} characters, more than the column's width "
                                          f"({column.width})")
            self._cut += 1
            text = text[:column.width]
        return text.ljust(column.width, column.pad) if column.align == "left" else text.rjust(column.width, column.pad)

    def _text_of(self, number, index, value, column):
        if column.format:
            try:
                if isinstance(value, (datetime.date, datetime.time)):
                    return value.strftime(column.format)
                if not isinstance(value, (str, bytes)):
                    return format(value, column.format)
            except (TypeError, ValueError) as exc:
                self._fail(number, index, f"the format {column.format!r} does not apply to {value!r} ({exc})")
        return format_value(value)

    def _fail(self, number, index, reason):

        name = self._names[index] if index < len(self._names) else f"#{index + 1}"
        raise PipelineError(f"Row {number:,}, column {name}: the value {reason}", step="output")

    def close(self):
        if self._cut:
            self.warnings.append(f"{self._cut:,} value{'s' if self._cut != 1 else ''} longer than the fixed-width "
                                 "column cut to its width")
        self._text.flush()
        self._text.detach()
