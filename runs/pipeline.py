"""The run pipeline: small steps that take and return plain data, composed by `run_pipeline`.

render query -> extract rows to a file in the run folder -> checksum -> deliver (temporary name, then
rename) -> record. Each step can be called and tested alone; only `run_pipeline` touches the models.
"""
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from connections.protocols import ConnectorError
from runs.formats import CsvOptions, CsvWriter, writer_for


class PipelineError(ConnectorError):
    """A step failed for a reason the user must fix (bad settings), not a connector failure."""


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


@dataclass
class OutputFile:
    path: Path
    name: str
    size: int
    md5: str
    deliveries: list = field(default_factory=list)


# --- steps -------------------------------------------------------------------------------------------

def render_query(query):
    """The query text exactly as it will run."""
    text = (query or "").strip()
    if not text:
        raise PipelineError("The task has no query", step="query")
    return text


def safe_name(text):
    """`text` made safe as a file name on every file system ("output" when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "output"


def output_name(file_name, task_name, extension="csv"):
    """The output file's name: the one set on the task, else the task name made safe for a file system."""
    name = (file_name or "").strip()
    if not name:
        name = f"{safe_name(task_name)}.{extension}"
    if "/" in name or "\\" in name or name in (".", ".."):
        raise PipelineError(f"The file name {name!r} may not contain a folder", step="file name")
    return name


def run_folder(task_id, run_id):
    folder = Path(settings.ETL_DATA_DIR) / "runs" / str(task_id) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def extract_to_csv(database, sql, path, options, progress, every=None, file_format="csv", params=None):
    """Stream the query's rows into `path` as CSV (or `file_format`: xlsx, jsonl). The file appears under
    its name only when complete. `params` are bound to the query's placeholders.

    `progress(rows)` is called every `every` rows and the caller decides what to log; memory stays flat
    because rows are written batch by batch (or row by row through PostgreSQL's COPY).
    """
    every = every or settings.ETL_PROGRESS_EVERY_ROWS
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")
    writer = writer_for(file_format)
    try:
        with open(partial, "wb", buffering=1 << 20) as out:
            extract = None
            if writer is CsvWriter:
                extract = _copy_fast_path(database, sql, out, options, progress, every, params)
            if extract is None:
                out.seek(0)
                out.truncate()
                extract = _portable_path(database, sql, out, options, progress, every, writer, params)
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
                   warnings=list(extract[2]) if len(extract) > 2 else [])


def _copy_fast_path(database, sql, out, options, progress, every, params=None):
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
                             params=params)


def _portable_path(database, sql, out, options, progress, every, writer_class=CsvWriter, params=None):
    with (database.execute(sql, params) if params else database.execute(sql)) as result:
        if result.columns is None:
            raise NoResultSet(result.rowcount)
        writer = writer_class(out, options)
        if hasattr(writer, "set_types"):  # Parquet: typed columns from the source's declared types
            writer.set_types(getattr(result, "types", None))
        writer.write_header(result.columns)
        next_report = every
        for batch in result.batches(min(5000, every)):
            writer.write_batch(batch)
            if writer.rows >= next_report:
                progress(writer.rows)
                next_report = (writer.rows // every + 1) * every
        writer.close()
        return result.columns, writer.rows, getattr(writer, "warnings", [])


def checksum(path):
    """(size, md5 hex) of a file, read in blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def deliver(path, name, targets):
    """Put the file on every (connector, folder, overwrite) target; return where it went."""
    deliveries = []
    for store, folder, overwrite in targets:
        remote = store.join(folder, name)
        with store.session() as session:
            session.put(str(path), remote, overwrite=overwrite)
        deliveries.append({"connection": store.connection.name, "kind": store.kind, "path": remote})
    return deliveries
