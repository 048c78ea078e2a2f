"""Extracting a query's rows to a file: render the query, stream its rows into the run folder as CSV (through
the database's COPY when it can) or as Excel, JSON Lines, Parquet (through COPY too, from PostgreSQL) or
fixed width. Plain data in and out, no models: each step can be called and tested alone.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from runs.errors import PipelineError
from runs.formats import CsvOptions, CsvWriter
from runs.writers import writer_for


class NoResultSet(PipelineError):
    """The statement ran but returned no rows to write (an UPDATE, a DDL statement)."""

    def __init__(self, rowcount):
        self.rowcount = max(rowcount if rowcount is not None else -1, 0)
        super().__init__(f"The statement returned no rows to write ({self.rowcount} rows affected); "
                         "a query source must return a result set", step="query")


@dataclass
class Extract:
    path: Path
    columns: list
    rows: int
    warnings: list = field(default_factory=list)  # values written in a documented fallback, counted
    types: list | None = None  # the columns' source type names; None where the driver declares none


def render_query(query):
    """The query text exactly as it will run."""
    text = (query or "").strip()
    if not text:
        raise PipelineError("The task has no query", step="query")
    return text


def extract_to_csv(database, sql, path, options, progress, every=None, file_format="csv", params=None):
    """Stream the query's rows into `path` as CSV (or `file_format`: xlsx, jsonl, parquet, fixed). The file
    appears under its name only when complete. `params` are bound to the query's placeholders.

    `progress(rows)` is called every `every` rows and the caller decides what to log; memory stays flat
    because rows are written batch by batch (or row by row through PostgreSQL's COPY, or, for Parquet, in
    chunks of COPY's lines).
    """
    every = every or settings.ETL_PROGRESS_EVERY_ROWS
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")
    writer = writer_for(file_format)
    declared = {}  # the source's type names, whichever path reads the rows
    try:
        with open(partial, "wb", buffering=1 << 20) as out:
            extract = None
            if writer is CsvWriter:
                extract = _copy_fast_path(database, sql, out, options, progress, every, params,
                                          on_types=lambda names: declared.update(types=names))
            elif getattr(writer, "takes_csv_rows", False):
                extract = _typed_copy_path(database, sql, out, options, progress, every, writer, params,
                                           on_types=lambda names: declared.update(types=names))
            if extract is None:
                out.seek(0)
                out.truncate()
                extract = _portable_path(database, sql, out, options, progress, every, writer, params,
                                         on_types=lambda names: declared.update(types=names))
        os.replace(partial, path)
    except UnicodeEncodeError as exc:
        character = exc.object[exc.start]
        raise PipelineError(
            f"A value holds {character!r} (U+{ord(character):04X}), which {options.encoding} cannot hold: "
            "choose UTF-8 as the file's encoding", step="query") from None
    finally:
        if partial.exists():
            partial.unlink()
    return Extract(path=path, columns=extract[0], rows=extract[1],
                   warnings=list(extract[2]) if len(extract) > 2 else [], types=declared.get("types"))


def _copy_fast_path(database, sql, out, options, progress, every, params=None, on_types=None):
    if not (hasattr(database, "copy_csv") and database.can_copy_csv(options)):
        return None

    def write_header(columns):
        if options.encoding == "utf-8-sig":
            out.write("\ufeff".encode())
        if options.include_headers:
            # The BOM, if any, is already written: the header itself is plain UTF-8.
            encoding = "utf-8" if options.encoding == "utf-8-sig" else options.encoding
            writer = CsvWriter(out, CsvOptions(**{**options.__dict__, "encoding": encoding}))
            writer.write_header(columns)
            writer.close()

    return database.copy_csv(sql, out, options, on_header=write_header, on_row_block=progress, block_rows=every,
                             params=params, on_types=on_types)


def _typed_copy_path(database, sql, out, options, progress, every, writer_class, params=None, on_types=None):
    """Parquet from PostgreSQL: the rows through COPY as CSV lines, parsed into typed columns by the writer
    (runs/parquet.py). None when the engine has no such path or cannot run the statement through it."""
    if not hasattr(database, "copy_typed_rows"):
        return None
    writer = writer_class(out, options)
    next_report = every

    def on_rows(data, ends, first_row):
        nonlocal next_report
        writer.write_csv_rows(data, ends, first_row)
        rows = first_row + len(ends) - 1
        if rows >= next_report:
            progress(rows)
            next_report = (rows // every + 1) * every

    try:
        result = database.copy_typed_rows(sql, writer.start_csv_rows, on_rows, params=params, on_types=on_types)
        if result is None:
            writer.abort()
            return None
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return result[0], result[1], writer.warnings


def _portable_path(database, sql, out, options, progress, every, writer_class=CsvWriter, params=None,
                   on_types=None):
    with (database.execute(sql, params) if params else database.execute(sql)) as result:
        if result.columns is None:
            raise NoResultSet(result.rowcount)
        if on_types and result.type_names is not None:
            on_types(result.type_names)
        writer = writer_class(out, options)
        if hasattr(writer, "set_types"):  # Parquet: typed columns from the source's declared types
            writer.set_types(getattr(result, "types", None))
        writer.write_header(result.columns)
        next_report = every
        try:
            for batch in result.batches(min(5000, every)):
                writer.write_batch(batch)
                if writer.rows >= next_report:
                    progress(writer.rows)
                    next_report = (writer.rows // every + 1) * every
            writer.close()
        except BaseException:
            if hasattr(writer, "abort"):  # Parquet: let go of the file before it is removed
                writer.abort()
            raise
        return result.columns, writer.rows, getattr(writer, "warnings", [])
