"""The file source: one or many files from SFTP, FTP or SMB by name or wildcard (date codes allowed),
passed through byte for byte or re-written, and what happens when nothing matches."""
import datetime
import hashlib
import os

import openpyxl
import pytest

from tests.fixtures.sources import log_text

pytestmark = pytest.mark.django_db

BINARY = bytes(range(256)) * 40 + b"\r\n\x00\xff not text \x80\x81"
CP1252_CSV = 'id;name;city\r\n1;"Müller; Sohn";Köln\r\n2;Zoë;"Paris|Nord"\r\n'.encode("cp1252")


@pytest.fixture
def file_server(request, tmp_path):
    """(connection, folder on disk, folder name) on the server kind asked for."""
    kind = request.param
    name = f"inbox-{tmp_path.name[-12:]}"
    if kind == "sftp":
        server = request.getfixturevalue("sshd")
        connection = request.getfixturevalue("sftp_connection")
        connection.path = str(server.root)
        connection.save()
    else:
        server = request.getfixturevalue({"ftp": "ftpd", "smb": "smbd"}[kind])
        connection = request.getfixturevalue(f"{kind}_connection")
    folder = server.make_folder(name)
    return connection, folder, name


def put(folder, name, data):
    (folder / name).write_bytes(data)
    os.chmod(folder / name, 0o666)


@pytest.mark.parametrize("file_server", ["sftp", "ftp", "smb"], indirect=True)
def test_wildcards_pick_files_that_arrive_byte_for_byte(file_server, source_task, run_task, dropbox):
    connection, folder, name = file_server
    put(folder, "a.csv", b"id\n1\n")
    put(folder, "b.csv", CP1252_CSV)
    put(folder, "image.bin", BINARY)
    put(folder, "notes.txt", b"not wanted\n")
    task = source_task(source_kind="files", source_connection=connection, file_folder=name,
                       file_pattern="*.csv; *.bin", destinations=[(dropbox, "in")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    delivered = dropbox.folder / "in"
    assert sorted(path.name for path in delivered.iterdir()) == ["a.csv", "b.csv", "image.bin"]
    for file_name in ("a.csv", "b.csv", "image.bin"):
        assert (delivered / file_name).read_bytes() == (folder / file_name).read_bytes()
    record = run.files.get(name="image.bin")
    assert (record.size, record.md5) == (len(BINARY), hashlib.md5(BINARY).hexdigest())
    assert "Found 3 files matching *.csv or *.bin" in log_text(run)


def test_a_date_pattern_picks_the_file_of_the_run_date(sshd, sftp_connection, source_task, run_task, dropbox,
                                                       tmp_path):
    folder = sshd.make_folder(f"dated-{tmp_path.name[-12:]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    yesterday = today - datetime.timedelta(days=1)
    for day in (today, yesterday):
        put(folder, f"report_{day:%Y%m%d}.txt", f"{day}\n".encode())
    task = source_task(source_kind="files", source_connection=sftp_connection, file_folder=folder.name,
                       file_pattern="report_%Y%m%d-1.txt", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert [path.name for path in dropbox.folder.iterdir()] == [f"report_{yesterday:%Y%m%d}.txt"]


@pytest.mark.parametrize("choice, status", [("fail", "failed"), ("warn", "warning"), ("succeed", "succeeded")])
def test_when_nothing_matches_the_task_fails_warns_or_succeeds(choice, status, sshd, sftp_connection, source_task,
                                                               run_task, tmp_path):
    folder = sshd.make_folder(f"empty-{choice}-{tmp_path.name[-8:]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    task = source_task(source_kind="files", source_connection=sftp_connection, file_folder=folder.name,
                       file_pattern="*.xml", on_no_files=choice)
    run = run_task(task)
    message = f"No file matching *.xml in {folder} on Vendor SFTP"
    assert run.status == status, log_text(run)
    assert message in log_text(run)
    assert run.error == ("" if choice == "succeed" else message)
    assert not run.files.exists()


@pytest.mark.parametrize("file_server", ["ftp"], indirect=True)
def test_files_are_rewritten_with_the_output_settings(file_server, source_task, run_task, dropbox):
    connection, folder, name = file_server
    put(folder, "vendor.csv", CP1252_CSV)
    task = source_task(source_kind="files", source_connection=connection, file_folder=name, file_pattern="vendor.csv",
                       file_handling="rewrite", csv_delimiter="|", line_terminator="crlf", encoding="utf-8",
                       destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "vendor.csv").read_bytes() == \
        'id|name|city\r\n1|Müller; Sohn|Köln\r\n2|Zoë|"Paris|Nord"\r\n'.encode()
    assert "Re-wrote vendor.csv (cp1252, semicolon-delimited) as vendor.csv: 2 rows" in log_text(run)
    assert run.files.get().name == "vendor.csv"


@pytest.mark.parametrize("file_server", ["smb"], indirect=True)
def test_a_rewrite_to_excel_and_deleting_the_source_files_after_delivery(file_server, source_task, run_task,
                                                                        dropbox):
    connection, folder, name = file_server
    put(folder, "vendor.csv", CP1252_CSV)
    task = source_task(source_kind="files", source_connection=connection, file_folder=name, file_pattern="*.csv",
                       file_handling="rewrite", file_format="xlsx", delete_source_files=True,
                       destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    rows = list(openpyxl.load_workbook(dropbox.folder / "vendor.xlsx").active.iter_rows(values_only=True))
    assert rows == [("id", "name", "city"), (1, "Müller; Sohn", "Köln"), (2, "Zoë", "Paris|Nord")]
    assert not (folder / "vendor.csv").exists()
    assert "Deleted 1 source file from Finance share" in log_text(run)


def test_source_files_stay_when_delivery_fails(sshd, sftp_connection, source_task, run_task, organization,
                                               tmp_path, closed_port):
    from connections.models import Connection

    folder = sshd.make_folder(f"keep-{tmp_path.name[-12:]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    put(folder, "a.csv", b"id\n1\n")
    dead = Connection.objects.create(organization=organization, name="Gone", kind="sftp", host="127.0.0.1",
                                     port=closed_port, username="x", secrets={"password": "x"})
    task = source_task(source_kind="files", source_connection=sftp_connection, file_folder=folder.name,
                       file_pattern="a.csv", delete_source_files=True, destinations=[(dead, "")])
    run = run_task(task)
    assert run.status == "failed"
    assert (folder / "a.csv").exists()


def test_a_single_file_takes_the_task_file_name(sshd, sftp_connection, source_task, run_task, dropbox, tmp_path):
    folder = sshd.make_folder(f"named-{tmp_path.name[-12:]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    put(folder, "export_1234.csv", b"x\n")
    task = source_task(source_kind="files", source_connection=sftp_connection, file_folder=folder.name,
                       file_pattern="export_*.csv", file_name="orders.csv", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "orders.csv").read_bytes() == b"x\n"
