"""Excel output: a streamed .xlsx written here (a zip of XML parts, strings inline), every value exact.

Why not openpyxl: its write-only mode builds an object per cell and stripped what it could not write
(control characters) or let XML reading turn CR LF into LF. Writing the sheet XML directly is about 4x
faster (bench figure `extract_xlsx`) and keeps every value as the format defines it:
- numbers, booleans, dates and times are typed cells; what Excel cannot hold exactly is text in the
  portal's text form (runs/formats.py): integers and decimals beyond 15 significant digits, NaN and
  infinities, dates before 1900-03-01 (Excel's 1900 leap-year bug) or beyond Python's, values with a time zone,
  times finer than a millisecond (Excel keeps milliseconds);
- text is an inline string; a character XML cannot carry (CR, other control characters) is written as
  `_xHHHH_` and a literal `_xHHHH_` as `_x005F_xHHHH_`, the escapes ECMA-376 defines and Excel reads back;
- a text over 32,767 characters (Excel's cell limit) fails the run naming the row and column, or, with the
  task's "cut long values" option, is cut and counted in a warning;
- NULL is an empty cell; a JSON `null` comes as the text `null`.
A sheet holds at most 1,048,576 rows; more rows continue on a new sheet, header repeated. Memory stays flat.
"""
import datetime
import decimal
import math
import re
import zipfile

from runs.errors import PipelineError
from runs.formats import format_value

XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_TEXT = 32_767
XLSX_EXACT_INT = 10 ** 15  # beyond 15 digits Excel rounds a number: keep such integers as text
EXACT_DIGITS = 15
EPOCH = datetime.datetime(1899, 12, 30)
FIRST_EXACT_DATE = datetime.date(1900, 3, 1)  # Excel counts a 29 February 1900 that never was
STYLE_HEADER, STYLE_DATE, STYLE_DATETIME, STYLE_TIME = 1, 2, 3, 4
_SPECIAL = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_XML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "_": "_x005F_"}


class CellTooLong(ValueError):
    """A text longer than Excel's cell limit (the writer names the row and column)."""


def _escape_match(match):
    char = match.group()
    return _XML.get(char) or "_x%04X_" % ord(char)


def xml_text(text):
    """Text as an .xlsx cell holds it (see the module docstring)."""
    return _SPECIAL.sub(_escape_match, text) if _SPECIAL.search(text) else text


def excel_length(text):
    """Length as Excel counts it (UTF-16 code units)."""
    return len(text) + sum(1 for char in text if char > "\uffff") if len(text) > XLSX_MAX_TEXT // 2 else len(text)


def cut(text):
    text = text[:XLSX_MAX_TEXT]
    while excel_length(text) > XLSX_MAX_TEXT:
        text = text[:-1]
    return text


def _text_cell(text):
    if len(text) > XLSX_MAX_TEXT // 2 and excel_length(text) > XLSX_MAX_TEXT:
        raise CellTooLong(text)
    return '<c t="inlineStr"><is><t xml:space="preserve">' + xml_text(text) + "</t></is></c>"


def _int_cell(value):
    if -XLSX_EXACT_INT < value < XLSX_EXACT_INT:
        return f"<c><v>{value}</v></c>"
    return _text_cell(str(value))


def _float_cell(value):
    if math.isfinite(value):
        return f"<c><v>{value!r}</v></c>"
    return _text_cell(format_value(value))


def _decimal_cell(value):
    if value.is_finite():
        exact = value.normalize() if value else value
        sign, digits, exponent = exact.as_tuple()
        if len(digits) <= EXACT_DIGITS and -300 < exponent + len(digits) < 300:
            return f"<c><v>{value}</v></c>"
    return _text_cell(format_value(value))


def _serial(moment):
    delta = moment - EPOCH
    return delta.days + (delta.seconds * 1_000_000 + delta.microseconds) / 86_400_000_000


def _datetime_cell(value):
    if value.tzinfo is None and not value.microsecond % 1000 and value.date() >= FIRST_EXACT_DATE:
        return f'<c s="{STYLE_DATETIME}"><v>{_serial(value)!r}</v></c>'
    return _text_cell(format_value(value))


def _date_cell(value):
    if value >= FIRST_EXACT_DATE:
        return f'<c s="{STYLE_DATE}"><v>{(value - EPOCH.date()).days}</v></c>'
    return _text_cell(format_value(value))


def _time_cell(value):
    if value.tzinfo is None and not value.microsecond % 1000:
        seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1_000_000
        return f'<c s="{STYLE_TIME}"><v>{seconds / 86400!r}</v></c>'
    return _text_cell(format_value(value))


CELLS = {
    type(None): lambda value: "<c/>",
    str: _text_cell,
    bool: lambda value: '<c t="b"><v>1</v></c>' if value else '<c t="b"><v>0</v></c>',
    int: _int_cell,
    float: _float_cell,
    decimal.Decimal: _decimal_cell,
    datetime.datetime: _datetime_cell,
    datetime.date: _date_cell,
    datetime.time: _time_cell,
}


def cell_xml(value):
    """One value as an XML `<c>` element (see the module docstring)."""
    convert = CELLS.get(type(value))
    if convert is not None:
        return convert(value)
    if isinstance(value, str):
        return _text_cell(str(value))
    return _text_cell(format_value(value))


NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
RELS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet {NS}>'
    '<numFmts count="3"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/><numFmt numFmtId="166" formatCode="hh:mm:ss"/>'
    '</numFmts><fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
    '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')


class XlsxWriter:
    """Streams batches of rows into an .xlsx; counts data rows; `warnings` says what was cut (if allowed)."""

    extension = "xlsx"

    def __init__(self, out, options):
        self.options = options
        self.rows = 0
        self.warnings = []
        self._cut_cells = 0
        self._zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheets = 0
        self._sheet = None
        self._sheet_rows = 0
        self._header = None

    def _new_sheet(self):
        if self._sheet is not None:
            self._end_sheet()
        self._sheets += 1
        self._sheet = self._zip.open(f"xl/worksheets/sheet{self._sheets}.xml", "w", force_zip64=True)
        self._sheet.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {NS}>'
                          "<sheetData>".encode())
        self._sheet_rows = 0
        if self._header is not None and self.options.include_headers:
            cells = "".join(f'<c t="inlineStr" s="{STYLE_HEADER}"><is><t xml:space="preserve">'
                            f"{xml_text(str(name)[:XLSX_MAX_TEXT])}</t></is></c>" for name in self._header)
            self._sheet.write(f"<row>{cells}</row>".encode())
            self._sheet_rows = 1

    def _end_sheet(self):
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()

    def write_header(self, columns):
        self._header = list(columns)
        self._new_sheet()

    def write_batch(self, batch):
        if self._sheet is None:
            self._new_sheet()
        start = 0
        while start < len(batch):
            room = XLSX_MAX_ROWS - self._sheet_rows
            if room <= 0:
                self._new_sheet()
                continue
            part = batch[start:start + room] if start or room < len(batch) else batch
            self._sheet.write(self._rows_xml(part).encode())
            self._sheet_rows += len(part)
            self.rows += len(part)
            start += len(part)

    def _rows_xml(self, rows):
        convert = cell_xml
        try:
            return "".join(["<row>" + "".join([convert(value) for value in row]) + "</row>" for row in rows])
        except CellTooLong:
            pass
        # The slow path, for the batch holding a text too long for a cell: name it, or cut it.
        lines = []
        for number, row in enumerate(rows, self.rows + 1):
            cells = []
            for index, value in enumerate(row):
                try:
                    cells.append(convert(value))
                except CellTooLong as exc:
                    if not self.options.truncate:
                        column = self._header[index] if self._header and index < len(self._header) else index + 1

                        self._abandon()
                        raise PipelineError(
                            f"Row {number:,}, column {column}: a text of {excel_length(exc.args[0]):,} characters "
                            f"is longer than an Excel cell holds ({XLSX_MAX_TEXT:,}); choose CSV or JSON Lines, "
                            "or let the task cut long values", step="output") from None
                    self._cut_cells += 1
                    cells.append(_text_cell(cut(exc.args[0])))
            lines.append("<row>" + "".join(cells) + "</row>")
        return "".join(lines)

    def _abandon(self):
        """Close the half-written file quietly: the run fails and the caller deletes it."""
        for part in (self._sheet, self._zip):
            try:
                if part is not None:
                    part.close()
            except (OSError, ValueError):
                pass

    def __del__(self):
        # A writer dropped half-way (a re-write retrying another encoding): no complaint from zipfile.
        if self._zip.fp is not None:
            self._abandon()

    def close(self):
        if self._sheet is None:
            self._new_sheet()
        self._end_sheet()
        if self._cut_cells:
            self.warnings.append(f"{self._cut_cells:,} text value{'s' if self._cut_cells != 1 else ''} longer than "
                                 f"an Excel cell holds ({XLSX_MAX_TEXT:,} characters) cut to that length")
        sheets = range(1, self._sheets + 1)
        names = ["Data" if number == 1 else f"Data {number}" for number in sheets]
        head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        self._zip.writestr("[Content_Types].xml", head + (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            + "".join(f'<Override PartName="/xl/worksheets/sheet{number}.xml" ContentType="application/'
                      f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for number in sheets)
            + "</Types>"))
        self._zip.writestr("_rels/.rels", head + (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{RELS_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'))
        self._zip.writestr("xl/workbook.xml", head + (
            f'<workbook {NS} xmlns:r="{RELS_NS}"><sheets>'
            + "".join(f'<sheet name="{name}" sheetId="{number}" r:id="rId{number}"/>'
                      for number, name in zip(sheets, names))
            + "</sheets></workbook>"))
        self._zip.writestr("xl/_rels/workbook.xml.rels", head + (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + "".join(f'<Relationship Id="rId{number}" Type="{RELS_NS}/worksheet" '
                      f'Target="worksheets/sheet{number}.xml"/>' for number in sheets)
            + f'<Relationship Id="rId{self._sheets + 1}" Type="{RELS_NS}/styles" Target="styles.xml"/>'
            "</Relationships>"))
        self._zip.writestr("xl/styles.xml", STYLES)
        self._zip.close()
