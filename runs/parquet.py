"""Parquet output (pyarrow): typed columns from the source's types, written in row groups, memory flat.

A column's type comes from the source's declared type where the engine gives one (`result.types`, see
`column_type`), else from its first non-NULL value:
- integers int16/int32/int64, floats float32/float64 (NaN and infinities as IEEE values), booleans;
- numeric(p, s) as decimal(p, s), precision and scale kept; a numeric without them (PostgreSQL's plain
  `numeric`) as its exact text, since no one decimal scale holds every value;
- date, time (microseconds), timestamp (microseconds, no zone), timestamp with time zone as a UTC instant;
- binary as binary; json, arrays, intervals, money, uuid, every other type as its text form (runs/formats.py).
A value the column's type cannot hold (an 'infinity' or BC date, NaN in a decimal) fails the run naming
its row and column: Parquet has no place for it, and a changed value must not reach a vendor.

From PostgreSQL the rows come through COPY as CSV lines (`write_csv_rows`, fed by the connector's
`copy_typed_rows`): pyarrow's CSV parser turns each chunk into typed columns on a worker thread while the
next chunk streams in, so no value passes through a Python object. Each type's text form is one pyarrow
parses exactly (shortest exact floats, ISO dates and times, `+00` instants, decimals at their declared
scale); bytea's hex text is decoded. The values are the same as those of the row-by-row path.
"""
import datetime
import decimal
import queue
import re
import threading

from connections.protocols.column_types import PYTHON_KINDS, ColumnType
from runs.errors import PipelineError
from runs.formats import format_value

ROW_GROUP_ROWS = 100_000
COMPRESSIONS = {"snappy", "zstd", "gzip", "none"}


def _from_value(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return ColumnType("timestamptz" if value.tzinfo is not None else "timestamp")
    if isinstance(value, decimal.Decimal):
        return ColumnType("text")  # no declared precision and scale: exact text
    kind = PYTHON_KINDS.get(type(value))
    return ColumnType(kind) if kind else ColumnType("text")


def arrow_type(column):
    import pyarrow as pa

    return {
        "bool": pa.bool_, "int16": pa.int16, "int32": pa.int32, "int64": pa.int64, "float32": pa.float32,
        "float64": pa.float64, "date": pa.date32, "time": lambda: pa.time64("us"),
        "timestamp": lambda: pa.timestamp("us"), "timestamptz": lambda: pa.timestamp("us", tz="UTC"),
        "binary": pa.binary, "text": pa.string,
        "decimal": lambda: (pa.decimal128 if column.precision <= 38 else pa.decimal256)(column.precision,
                                                                                         column.scale),
    }[column.kind]()


class ParquetWriter:
    """Streams batches of rows (`write_batch`), or chunks of CSV lines from COPY (`start_csv_rows`,
    `write_csv_rows`), into a Parquet file in row groups of ROW_GROUP_ROWS rows (fewer when a chunk of CSV
    lines reaches its size limit)."""

    extension = "parquet"
    takes_csv_rows = True

    def __init__(self, out, options):
        self.options = options
        self.rows = 0
        self.warnings = []
        self._out = out
        self._names = None
        self._declared = None
        self._types = None
        self._writer = None
        self._pending = []
        self._pending_rows = 0
        self._csv = None  # the CSV-lines converter, when rows come from COPY

    def write_header(self, columns):
        seen, names = {}, []
        for name in columns:
            name = str(name)
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        self._names = names

    def set_types(self, types):
        """The source's declared column types (ColumnType or None each), when the engine gives them."""
        self._declared = list(types) if types else None

    def _settle_types(self, batch):
        width = len(self._names)
        declared = self._declared if self._declared and len(self._declared) == width else [None] * width
        types = []
        for index, column_type in enumerate(declared):
            if column_type is None:
                first = next((row[index] for row in batch if row[index] is not None), None)
                column_type = _from_value(first) or ColumnType("text")
            types.append(column_type)
        self._types = types

    def write_batch(self, batch):
        if not batch:
            return
        if not self._names:  # no header (a re-written file without one): the columns get names
            self.write_header([f"column_{index + 1}" for index in range(len(batch[0]))])
        for number, row in enumerate(batch, self.rows + self._pending_rows + 1):
            if len(row) != len(self._names):

                raise PipelineError(f"Row {number:,} has {len(row)} values but the file has {len(self._names)} "
                                    "columns: a Parquet file's rows all have the same columns", step="output")
        if self._types is None:
            self._settle_types(batch)
        self._pending.append(batch)
        self._pending_rows += len(batch)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self):
        import pyarrow as pa

        rows = [row for batch in self._pending for row in batch]
        self._pending, self._pending_rows = [], 0
        if not rows:
            return
        arrays = []
        for index, column in enumerate(zip(*rows)):
            arrays.append(self._array(pa, index, column))
        self._write_table(pa.Table.from_arrays(arrays, names=self._names))

    def _array(self, pa, index, column):
        column_type = self._types[index]
        target = arrow_type(column_type)
        values = column
        if column_type.kind == "text":
            values = [value if value is None or type(value) is str else format_value(value) for value in column]
        try:
            return pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError) as exc:
            self._fail(pa, index, column, target, exc)

    def _fail(self, pa, index, column, target, exc):

        for number, value in enumerate(column, self.rows + 1):
            try:
                pa.array([value], type=target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError) as reason:
                exc = reason
                break
        else:
            number, value = self.rows + 1, None
        raise PipelineError(f"Row {number:,}, column {self._names[index]}: the value {format_value(value)!r} does "
                            f"not fit the Parquet column's type {target} ({exc}); cast it in the query, or choose "
                            "CSV or JSON Lines", step="output") from None

    def start_csv_rows(self, names, types):
        """Rows will come as chunks of COPY's CSV lines (see the module docstring), columns typed `types`."""
        self.write_header(names)
        self.set_types(types)
        self._types = [column or ColumnType("text") for column in self._declared or [None] * len(self._names)]
        self._csv = _CsvRowsConverter(self)

    def write_csv_rows(self, data, ends, first_row):
        """Queue one chunk of CSV lines (`data`, each row ending at its offset in `ends`; rows `first_row`...)
        for the worker; raises the worker's error."""
        self._csv.put(data, ends, first_row)

    def abort(self):
        """After a failure: stop the worker and let go of the file, left unfinished (the caller removes it)."""
        if self._csv is not None:
            self._csv.stop()
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except (OSError, ValueError):
                pass

    def _open(self, schema):
        import pyarrow.parquet as pq

        compression = self.options.compression if self.options.compression in COMPRESSIONS else "snappy"
        # Plain encoding, no dictionaries: pyarrow builds a dictionary per column and drops it when the column
        # has many distinct values (ids, names, times), a third of the writing time; with snappy the files
        # came out smaller without, on the bench's table.
        self._writer = pq.ParquetWriter(self._out, schema, compression=compression, use_dictionary=False)

    def _write_table(self, table):
        if self._writer is None:
            self._open(table.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def close(self):
        if self._csv is not None:
            self._csv.finish()
        self._flush()
        if self._writer is None:
            import pyarrow as pa

            names = self._names or []
            declared = self._declared if self._declared and len(self._declared) == len(names) else [None] * len(names)
            types = self._types or [column or ColumnType("text") for column in declared]
            self._open(pa.schema([(name, arrow_type(column)) for name, column in zip(names, types)]))
        self._writer.close()


COLUMN_NUMBER = re.compile(r"In CSV column #(\d+)")


class _CsvRowsConverter:
    """Parses chunks of COPY's CSV lines into typed Arrow tables and writes them, on a worker thread: pyarrow
    works without the GIL, so the connector reads the next chunk meanwhile. One chunk waits at most (memory
    stays flat); the worker's first error is raised to the connector's thread at its next chunk or at the end.
    """

    def __init__(self, writer):
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        self._pa, self._csv, self._writer = pa, pa_csv, writer
        names = writer._names
        self._targets = [arrow_type(column) for column in writer._types]
        # bytea comes as its hex text: parsed as text, decoded here.
        self._binary = [index for index, column in enumerate(writer._types) if column.kind == "binary"]
        parsed_types = [pa.string() if index in self._binary else target
                        for index, target in enumerate(self._targets)]
        self._convert = pa_csv.ConvertOptions(
            column_types=dict(zip(names, parsed_types)), null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["true"], false_values=["false"])
        self._as_text = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names}, null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False)
        self._queue = queue.Queue(maxsize=1)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def put(self, data, ends, first_row):
        if self._error is not None:
            raise self._error
        self._queue.put((data, ends, first_row))

    def finish(self):
        self.stop()
        if self._error is not None:
            raise self._error

    def stop(self):
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self):
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer._write_table(self._table(*item))
                except BaseException as exc:  # raised in the connector's thread (put/finish)
                    self._error = exc

    def _read(self, data, rows, convert):
        pa, pa_csv = self._pa, self._csv
        # A value holding a line break needs the slower quote-aware line splitting; most chunks have none.
        breaks = data.count(b"\n") != rows or b"\r" in data
        return pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=self._writer._names, use_threads=False,
                                            block_size=max(len(data) + 1, 1 << 20)),
            # An empty line is a row: a one-column row holding NULL.
            parse_options=pa_csv.ParseOptions(newlines_in_values=breaks, ignore_empty_lines=False),
            convert_options=convert)

    def _table(self, data, ends, first_row):
        pa = self._pa
        try:
            table = self._read(data, len(ends), self._convert)
        except pa.ArrowInvalid as exc:
            try:
                self._fail(data, ends, first_row)
            except pa.ArrowInvalid:
                pass  # no single value to name (text that is not UTF-8 fails even as text): the chunk's rows
            raise PipelineError(f"Rows {first_row:,} to {first_row + len(ends) - 1:,} could not be written to "
                                f"Parquet: {exc}", step="output") from None
        for index in self._binary:
            texts = table.column(index).to_pylist()
            decoded = pa.array([None if text is None else bytes.fromhex(text[2:]) for text in texts], pa.binary())
            table = table.set_column(index, table.field(index).with_type(pa.binary()), decoded)
        return table

    def _fail(self, data, ends, first_row):
        """Raise the PipelineError naming the first row and column whose value its type cannot hold: a halving
        search over the chunk's rows with the same parser, then the columns of that row one by one."""
        pa = self._pa

        def rows(start, stop):  # the bytes of rows start..stop-1 of the chunk
            return bytes(data[ends[start - 1] if start else 0:ends[stop - 1]])

        low, high = 0, len(ends)  # the first failing row is among rows low..high-1
        while high - low > 1:
            middle = (low + high) // 2
            try:
                self._read(rows(low, middle), middle - low, self._convert)
                low = middle
            except pa.ArrowInvalid:
                high = middle
        line = rows(low, low + 1)
        texts = self._read(line, 1, self._as_text).to_pylist()[0]
        names = self._writer._names
        for index, name in enumerate(names):
            try:
                self._read(line, 1, self._csv.ConvertOptions(
                    column_types={other: (self._convert.column_types[other] if other == name else pa.string())
                                  for other in names},
                    null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                    true_values=["true"], false_values=["false"]))
            except pa.ArrowInvalid as exc:
                reason = COLUMN_NUMBER.sub("", str(exc)).strip(" :")
                raise PipelineError(
                    f"Row {first_row + low:,}, column {name}: the value {texts[name]!r} does not fit the Parquet "
                    f"column's type {self._targets[index]} ({reason}); cast it in the query, or choose CSV or "
                    "JSON Lines", step="output") from None
