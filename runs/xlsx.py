"""Excel output: a streamed .xlsx (openpyxl's write-only mode) keeping numbers, dates and booleans typed."""
import datetime
import decimal
import math
import re

from runs.formats import format_value

# Control characters an .xlsx file cannot hold (openpyxl refuses them).
XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
XLSX_MAX_ROWS = 1_048_576
XLSX_EXACT_INT = 10 ** 15  # beyond 15 digits Excel rounds a number: keep such integers as text


class XlsxWriter:
    """A streamed .xlsx (openpyxl write-only mode): memory stays flat whatever the row count.

    A sheet holds at most 1,048,576 rows; more rows continue on a new sheet, header repeated.
    """

    extension = "xlsx"

    def __init__(self, out, options):
        from openpyxl import Workbook

        self.options = options
        self.rows = 0
        self._out = out
        self._book = Workbook(write_only=True)
        self._sheet = None
        self._sheet_rows = 0
        self._header = None

    def _new_sheet(self):
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        number = len(self._book.worksheets) + 1
        self._sheet = self._book.create_sheet(title="Data" if number == 1 else f"Data {number}")
        self._sheet_rows = 0
        if self._header is not None and self.options.include_headers:
            bold = Font(bold=True)
            cells = []
            for name in self._header:
                cell = WriteOnlyCell(self._sheet, value=_xlsx_text(str(name)))
                cell.data_type = "s"
                cell.font = bold
                cells.append(cell)
            self._sheet.append(cells)
            self._sheet_rows = 1

    def write_header(self, columns):
        self._header = list(columns)
        self._new_sheet()

    def write_batch(self, batch):
        from openpyxl.cell import WriteOnlyCell

        if self._sheet is None:
            self._new_sheet()
        for row in batch:
            if self._sheet_rows >= XLSX_MAX_ROWS:
                self._new_sheet()
            values = [_xlsx_value(value) for value in row]
            for index, value in enumerate(values):
                if type(value) is str and value.startswith("="):
                    # Text that looks like a formula stays text: data must never run as a formula.
                    cell = WriteOnlyCell(self._sheet, value=value)
                    cell.data_type = "s"
                    values[index] = cell
            self._sheet.append(values)
            self._sheet_rows += 1
        self.rows += len(batch)

    def close(self):
        if self._sheet is None:
            self._new_sheet()
        self._book.save(self._out)


def _xlsx_text(text):
    return XLSX_ILLEGAL.sub("", text) if XLSX_ILLEGAL.search(text) else text


def _xlsx_value(value):
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return _xlsx_text(value)
    if kind is bool:
        return value
    if kind is int:
        return value if -XLSX_EXACT_INT < value < XLSX_EXACT_INT else str(value)
    if kind is float:
        return value if math.isfinite(value) else format_value(value)
    if kind is decimal.Decimal:
        return value if value.is_finite() else format_value(value)
    if kind in (datetime.datetime, datetime.time):
        return value if value.tzinfo is None else format_value(value)
    if kind is datetime.date:
        return value
    return _xlsx_text(format_value(value))
