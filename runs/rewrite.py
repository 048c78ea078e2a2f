"""Re-writing a delimited file (file sources): any common CSV dialect in, the task's output settings out."""
import csv
import os
import re

from runs.formats import NumericText
from runs.writers import writer_for

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
NUMBER_TEXT = re.compile(r"-?(?:0|[1-9]\d{0,14})(?:\.\d+)?")


class RewriteError(ValueError):
    """The file cannot be read as delimited text; the message says why."""


def sniff_delimiter(text):
    """The delimiter of a file's first line: the candidate found most often outside quotes (default comma)."""
    line = text.split("\n", 1)[0]
    unquoted = re.sub(r'"(?:[^"]|"")*"', "", line)
    counts = {candidate: unquoted.count(candidate) for candidate in CANDIDATE_DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _typed_for(file_format, quoting):
    if file_format == "xlsx":
        return lambda value: (None if value == "" else
                              (int(value) if value.lstrip("-").isdigit() else float(value))
                              if NUMBER_TEXT.fullmatch(value) else value)
    if quoting == "nonnumeric":
        return lambda value: None if value == "" else NumericText(value) if NUMBER_TEXT.fullmatch(value) else value
    return lambda value: None if value == "" else value


def rewrite_file(source, target, options, file_format="csv", batch_rows=5000):
    """Read delimited text `source` (UTF-8 with or without BOM, else Windows-1252; delimiter sniffed) and
    write it to `target` with `options` in `file_format`. The first line is the header: kept when
    `options.include_headers`, dropped otherwise. Return (data rows, source encoding, source delimiter)."""
    with open(source, "rb") as handle:
        head = handle.read(1 << 16)
    encodings = ("utf-8-sig",) if head.startswith(b"\xef\xbb\xbf") else ("utf-8", "cp1252")
    delimiter = sniff_delimiter(head.decode(encodings[0], errors="replace"))
    for encoding in encodings:
        try:
            return _rewrite(source, target, options, file_format, encoding, delimiter, batch_rows), encoding, delimiter
        except UnicodeDecodeError:
            continue
    raise RewriteError(f"{source.name} is neither UTF-8 nor Windows-1252 text: pass it through unchanged instead")


def _rewrite(source, target, options, file_format, encoding, delimiter, batch_rows):
    typed = _typed_for(file_format, options.quoting)
    partial = target.with_name(f".{target.name}.part")
    try:
        with open(source, encoding=encoding, newline="") as text, open(partial, "wb", buffering=1 << 20) as out:
            reader = csv.reader(text, delimiter=delimiter)
            writer = writer_for(file_format)(out, options)
            header = next(reader, None)
            writer.write_header(header or [])
            batch = []
            for row in reader:
                batch.append([typed(value) for value in row])
                if len(batch) >= batch_rows:
                    writer.write_batch(batch)
                    batch = []
            if batch:
                writer.write_batch(batch)
            writer.close()
        os.replace(partial, target)
    except csv.Error as exc:
        raise RewriteError(f"{source.name} could not be read as delimited text: {exc}") from None
    finally:
        if partial.exists():
            partial.unlink()
    return writer.rows
