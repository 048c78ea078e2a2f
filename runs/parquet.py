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
"""
import datetime
import decimal

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
    """Streams batches of rows into a Parquet file in row groups of ROW_GROUP_ROWS rows."""

    extension = "parquet"

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
        import pyarrow.parquet as pq

        rows = [row for batch in self._pending for row in batch]
        self._pending, self._pending_rows = [], 0
        if not rows:
            return
        arrays = []
        for index, column in enumerate(zip(*rows)):
            arrays.append(self._array(pa, index, column))
        table = pa.Table.from_arrays(arrays, names=self._names)
        if self._writer is None:
            compression = self.options.compression if self.options.compression in COMPRESSIONS else "snappy"
            self._writer = pq.ParquetWriter(self._out, table.schema, compression=compression)
        self._writer.write_table(table, row_group_size=len(rows))
        self.rows += len(rows)

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

    def close(self):
        self._flush()
        if self._writer is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            names = self._names or []
            declared = self._declared if self._declared and len(self._declared) == len(names) else [None] * len(names)
            types = self._types or [column or ColumnType("text") for column in declared]
            schema = pa.schema([(name, arrow_type(column)) for name, column in zip(names, types)])
            compression = self.options.compression if self.options.compression in COMPRESSIONS else "snappy"
            self._writer = pq.ParquetWriter(self._out, schema, compression=compression)
        self._writer.close()
