"""Column types as database drivers declare them, for writers that keep values typed (Parquet).

Here rather than beside the Parquet writer because the connection protocols describe their result columns
with these, and protocols import nothing from the run pipeline.
"""
import datetime
import decimal
from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnType:
    """A source column's declared type: kind is one of the keys of `arrow_type`'s table."""

    kind: str
    precision: int = 0
    scale: int = 0


# PostgreSQL type OIDs the writers keep typed (see connections/protocols/postgres.py TYPED).
PG_KINDS = {16: "bool", 20: "int64", 21: "int16", 23: "int32", 26: "int64", 700: "float32", 701: "float64",
            1700: "decimal", 1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz", 17: "binary"}
PYTHON_KINDS = {bool: "bool", int: "int64", float: "float64", decimal.Decimal: "decimal", datetime.date: "date",
                datetime.time: "time", datetime.datetime: "timestamp", bytes: "binary", bytearray: "binary",
                str: "text"}


def pg_column_type(oid, precision=None, scale=None):
    kind = PG_KINDS.get(oid, "text")
    if kind == "decimal" and not precision:
        return ColumnType("text")  # plain numeric: its exact text (see the module docstring)
    return ColumnType(kind, precision or 0, scale or 0)


def python_column_type(kind, precision=None, scale=None):
    """A column type from a Python type a driver declares (pyodbc's description); None: learn from values."""
    name = PYTHON_KINDS.get(kind)
    if name is None or name == "text":
        return None
    if name == "decimal":
        if not precision or precision > 38:
            return ColumnType("text")
        return ColumnType("decimal", precision, scale or 0)
    return ColumnType(name)


def pg_type_name(oid):
    """PostgreSQL's own name of a built-in type ("int4", "numeric", "timestamptz"); "oid N" for the others (an
    enum, a domain). The same on every path a PostgreSQL extract takes (COPY, cursor, psqlODBC), so a run's
    recorded column types compare with the last run's whatever path each took (runs/drift.py)."""
    from psycopg.postgres import types  # the registry of built-in types: no connection needed

    info = types.get(oid)
    return info.name if info is not None else f"oid {oid}"
