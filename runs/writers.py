"""Which writer writes a task's file format. Its own module because the Excel, Parquet and fixed-width writers
build on runs/formats.py (value formatting, CSV options), so formats.py cannot name them without a cycle."""
from runs.fixed_width import FixedWidthWriter
from runs.formats import CsvWriter, JsonLinesWriter
from runs.parquet import ParquetWriter
from runs.xlsx import XlsxWriter

WRITERS = {"csv": CsvWriter, "xlsx": XlsxWriter, "jsonl": JsonLinesWriter, "parquet": ParquetWriter,
           "fixed": FixedWidthWriter}


def writer_for(file_format):
    """The writer class for a task's file format (CSV for an unknown one, as before)."""
    return WRITERS.get(file_format, CsvWriter)
