"""Packaging: characters appended to lines, GPG before zip, one archive, .md5 files, empty files held back."""
import datetime
import hashlib
import io
import zipfile

import pytest

from runs import packaging
from runs.context import OutputFile, RunContext
from runs.models import RunFile
from tasks.models import Destination
from tests.fixtures.delivery import EMPTY_QUERY, ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db

ORDERS_CSV_CRLF_TILDE = (
    'id,day,customer,amount,note~\r\n'
    '1,2024-03-14,"Smith, John",12.50,"line one\nline two"~\r\n'
    '2,2024-03-14,Zoë Ünicode,0.10,""~\r\n'
    '3,2024-03-13,"She said ""hi""",-3.00,~\r\n'
).encode()
ORDERS_CSV = (
    'id,day,customer,amount,note\n'
    '1,2024-03-14,"Smith, John",12.50,"line one\nline two"\n'
    '2,2024-03-14,Zoë Ünicode,0.10,""\n'
    '3,2024-03-13,"She said ""hi""",-3.00,\n'
).encode()
MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


def test_characters_are_appended_to_every_record_not_inside_quoted_fields(make_task, sqlite_orders, local_folder,
                                                                         ny_project, run_at):
    connection, folder = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv",
                     line_terminator="crlf", append_to_lines="~")
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded", log_text(run)
    assert (folder / "orders.csv").read_bytes() == ORDERS_CSV_CRLF_TILDE
    assert "Appended '~' to 4 lines of orders.csv" in log_text(run)


@pytest.fixture
def context(make_task, sqlite_orders, tmp_path):
    lines = []

    def make(**fields):
        task = make_task(sqlite_orders, ORDERS_QUERY, **fields)
        return RunContext(run=None, task=task, folder=tmp_path, params={},
                          log=lambda message, level="info": lines.append((level, message)))

    make.lines = lines
    return make


def test_appending_to_a_plain_text_file_reads_in_blocks(context, tmp_path, monkeypatch):
    monkeypatch.setattr(packaging, "CHUNK", 4)  # line breaks (and a \r\n) fall across block ends
    path = tmp_path / "notes.txt"
    path.write_bytes(b'a "quote\r\nbb\n\nccc\r\nlast')
    ctx = context(append_to_lines="|", encoding="cp1252")
    packaging.append_to_lines(ctx, OutputFile(path=path, name="notes.txt"), "|")
    assert path.read_bytes() == b'a "quote|\r\nbb|\n|\nccc|\r\nlast|'


def test_appended_characters_use_the_files_encoding(context, tmp_path):
    path = tmp_path / "report.csv"
    path.write_bytes("naïve\n".encode("cp1252"))
    ctx = context(append_to_lines="€", encoding="cp1252")
    packaging.append_to_lines(ctx, OutputFile(path=path, name="report.csv"), "€")
    assert path.read_bytes() == "naïve€\n".encode("cp1252")


def test_encrypted_then_zipped_with_md5_files(make_task, sqlite_orders, local_folder, gpg_connection, gpg_keys,
                                              ny_project, run_at):
    connection, folder = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv",
                     gpg_key=gpg_connection, zip_output=True, zip_name="orders_{yesterday:%Y%m%d}",
                     write_md5_file=True)
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded", log_text(run)

    assert sorted(path.name for path in folder.iterdir()) == ["orders_20240314.zip", "orders_20240314.zip.md5"]
    delivered = (folder / "orders_20240314.zip").read_bytes()
    md5 = hashlib.md5(delivered).hexdigest()
    assert (folder / "orders_20240314.zip.md5").read_text() == f"{md5}  orders_20240314.zip\n"
    with zipfile.ZipFile(io.BytesIO(delivered)) as archive:
        assert archive.namelist() == ["orders.csv.gpg"]
        encrypted = archive.read("orders.csv.gpg")
    assert not encrypted.startswith(b"id,day")
    sealed = folder / "sealed.gpg"
    sealed.write_bytes(encrypted)
    assert gpg_keys.decrypt(sealed) == ORDERS_CSV

    records = {record.name: record for record in RunFile.objects.filter(run=run)}
    assert set(records) == {"orders_20240314.zip", "orders_20240314.zip.md5"}
    assert (records["orders_20240314.zip"].md5, records["orders_20240314.zip"].size) == (md5, len(delivered))
    # The history keeps what was delivered, and only that: no plain-text copy is left behind.
    stored = records["orders_20240314.zip"].stored_path
    assert open(stored, "rb").read() == delivered
    run_folder = (folder.parent / "data" / "runs")
    assert not [path for path in run_folder.rglob("*") if path.is_file() and path.suffix in (".csv", ".gpg")]


def test_an_empty_result_is_not_zipped_or_sent_when_no_destination_wants_it(make_task, sqlite_orders, local_folder,
                                                                           ny_project, run_at):
    connection, folder = local_folder()
    task = make_task(sqlite_orders, EMPTY_QUERY, file_name="orders.csv", zip_output=True)
    Destination.objects.create(task=task, connection=connection, skip_empty=True)
    run = run_at(task, MARCH_15)
    assert run.status == "warning"
    assert "orders.csv has no data rows: not sent" in run.error
    assert list(folder.iterdir()) == []
    assert not RunFile.objects.filter(run=run).exists()


def test_a_zero_byte_file_counts_as_empty(context, tmp_path, local_folder):
    connection, _ = local_folder()
    ctx = context(file_name="x")
    Destination.objects.create(task=ctx.task, connection=connection, skip_empty=True)
    (tmp_path / "blank.txt").write_bytes(b"")
    (tmp_path / "full.txt").write_bytes(b"data")
    outputs = packaging.finish(ctx, [OutputFile(path=tmp_path / "blank.txt", name="blank.txt"),
                                     OutputFile(path=tmp_path / "full.txt", name="full.txt")])
    assert [output.name for output in outputs] == ["full.txt"]
    assert ctx.warnings == ["blank.txt is empty (0 bytes): not sent (\"don't send empty files\" is on)"]
