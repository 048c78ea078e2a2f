"""Packaging stage: the files between the source and delivery.

In order: leave out empty files no destination wants -> append characters to each line -> GPG-encrypt each
file (`.gpg` appended) -> zip them into one archive -> `.md5` sidecar files -> size and md5 of every file
exactly as it will be delivered. Intermediate files are deleted, so the run's history (and a resend) holds
what was delivered. An output keeps its `rows`, so "empty" still means what it meant before packaging.
"""
import os
import re
import zipfile
from pathlib import Path

from connections.protocols import KEY
from runs.context import OutputFile
from runs.errors import PipelineError
from runs.files import checksum
from runs.parameters import zip_file_name

BINARY_SUFFIXES = (".xlsx", ".zip", ".gz", ".gpg", ".pgp", ".7z", ".parquet", ".pdf")
CHUNK = 1 << 20
LINE_END = re.compile(rb"\r?\n")


def finish(ctx, outputs):
    """Return the files as they will be delivered, each with its size and md5."""
    task = ctx.task
    outputs = _drop_unwanted_empty(ctx, outputs)
    if task.append_to_lines:
        for output in outputs:
            append_to_lines(ctx, output, task.append_to_lines)
    if task.gpg_key_id:
        outputs = [encrypt(ctx, output) for output in outputs]
    if task.zip_output and outputs:
        outputs = [zip_outputs(ctx, outputs, zip_file_name(task, ctx.params))]
    for output in outputs:
        output.size, output.md5, output.sha256 = checksum(output.path)
    if task.write_md5_file:
        outputs = outputs + [md5_sidecar(output) for output in outputs]
    for output in outputs:
        ctx.log(f"{output.name}: {output.size:,} bytes, md5 {output.md5}")
    return outputs


def was_empty(output):
    """Empty as the source produced it: zero data rows for a table (headers excluded), else zero bytes."""
    return output.is_empty


def _drop_unwanted_empty(ctx, outputs):
    """An empty file that every destination refuses is not packaged, zipped or sent at all."""
    destinations = ctx.task.destinations_in_effect()
    if not destinations or not all(destination.skip_empty for destination in destinations):
        return _mark_empty(outputs)
    kept = []
    for output in outputs:
        if was_empty(output):
            what = "has no data rows" if output.rows is not None else "is empty (0 bytes)"
            ctx.warn(f"{output.name} {what}: not sent (\"don't send empty files\" is on)")
        else:
            kept.append(output)
    return kept


def _mark_empty(outputs):
    # A zero-byte file stays "empty" after encryption or zipping only if its row count says so.
    for output in outputs:
        if output.rows is None and output.path.stat().st_size == 0:
            output.rows = 0
    return outputs


# --- append characters to every line -----------------------------------------------------------------

def _quote_aware(ctx, output):
    """CSV written with quotes can hold line breaks inside a field: those are not line ends."""
    return output.name.lower().endswith(".csv") or (
        output.rows is not None and ctx.task.file_format == "csv" and ctx.task.csv_quoting != "none")


def append_to_lines(ctx, output, suffix):
    if output.name.lower().endswith(BINARY_SUFFIXES):
        ctx.log(f"{output.name} is not a text file: nothing appended to its lines", level="warning")
        return
    encoding = "utf-8" if ctx.task.encoding == "utf-8-sig" else (ctx.task.encoding or "utf-8")
    try:
        extra = suffix.encode(encoding)
    except UnicodeEncodeError:
        raise PipelineError(f"The characters to append ({suffix!r}) cannot be written in {encoding}",
                                     step="settings") from None
    source = output.path
    target = source.with_name(f".{source.name}.append")
    quote_aware = _quote_aware(ctx, output)
    lines = 0
    with open(source, "rb") as reader, open(target, "wb") as writer:
        inside_quotes, pending, last = False, b"", b""
        while block := reader.read(CHUNK):
            block = pending + block
            # A \r at the end of a block may start a \r\n that the next block finishes.
            pending = b"\r" if block.endswith(b"\r") else b""
            if pending:
                block = block[:-1]
            text, inside_quotes, count = _append_in_block(block, extra, inside_quotes, quote_aware)
            lines += count
            writer.write(text)
            last = (block[-1:] or last)
        if pending:
            writer.write(pending)
            last = pending
        if last and last != b"\n" and not (inside_quotes and quote_aware):
            writer.write(extra)  # the last line has no line break: it still gets the characters
            lines += 1
    os.replace(target, source)
    ctx.log(f"Appended {suffix!r} to {lines:,} lines of {output.name}")


def _append_in_block(block, extra, inside_quotes, quote_aware):
    if not quote_aware:
        text, count = LINE_END.subn(lambda match: extra + match.group(), block)
        return text, inside_quotes, count
    parts = block.split(b'"')
    count = 0
    for index, part in enumerate(parts):
        # Each quote flips the state; the first part continues the previous block's state.
        outside = (not inside_quotes) if index % 2 == 0 else inside_quotes
        if outside:
            parts[index], found = LINE_END.subn(lambda match: extra + match.group(), part)
            count += found
    if len(parts) % 2 == 0:
        inside_quotes = not inside_quotes
    return b'"'.join(parts), inside_quotes, count


# --- encryption, zip, md5 ---------------------------------------------------------------------------

def encrypt(ctx, output):
    key = ctx.task.gpg_key
    connector = key.connector()
    if KEY not in connector.capabilities:
        raise PipelineError(f"{key.name} is not a GPG key connection", step="settings")
    target = output.path.with_name(output.path.name + ".gpg")
    connector.encrypt_file(output.path, target)
    output.path.unlink()
    ctx.log(f"Encrypted {output.name} to {key.name} -> {output.name}.gpg")
    return OutputFile(path=target, name=output.name + ".gpg", rows=output.rows)


def zip_outputs(ctx, outputs, name):
    folder = Path(ctx.folder) / "zip"
    folder.mkdir(exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.part"
    names = [output.name for output in outputs]
    duplicates = sorted({entry for entry in names if names.count(entry) > 1})
    if duplicates:
        raise PipelineError(f"Two files would have the same name in {name}: {', '.join(duplicates)}",
                                     step="settings")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for output in outputs:
            archive.write(output.path, arcname=output.name)
    os.replace(partial, target)
    for output in outputs:
        output.path.unlink()
    counts = [output.rows for output in outputs]
    ctx.log(f"Zipped {len(outputs)} file(s) into {name}")
    return OutputFile(path=target, name=name, rows=None if None in counts else sum(counts))


def md5_sidecar(output):
    """`<md5>  <name>` as md5sum writes it, so the receiver can run `md5sum -c`."""
    path = output.path.with_name(output.path.name + ".md5")
    path.write_bytes(f"{output.md5}  {output.name}\n".encode())
    # Same row count as its file: where an empty file is not sent, neither is its checksum.
    sidecar = OutputFile(path=path, name=output.name + ".md5", rows=output.rows, sidecar=True)
    sidecar.size, sidecar.md5, sidecar.sha256 = checksum(path)
    return sidecar

