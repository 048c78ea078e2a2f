"""The file-store contract: every store (SFTP, FTP, FTPS, a legacy FTP server, SMB, a local folder) passes the
same checks against a real server, each seen from the server's own disk."""
import hashlib
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from connections.models import Connection
from connections.protocols import ConnectorError
from tests.file_stores import check_round_trip, local_file

pytestmark = pytest.mark.django_db

# Bigger than any store's transfer block (SFTP 128 KiB, FTP 64 KiB, SMB's largest write), and not a multiple.
LARGE = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(2 * 1024 * 1024 // 32 + 1)) + b"tail"
ODD_NAME = "Bericht März 2024 – été & co.csv"


@dataclass
class Store:
    connector: object
    folder: Path  # the connection's base folder, on the server's own disk
    creates_missing_folders: bool  # the contract for a file put into a folder that does not exist yet

    def path(self, *parts):
        return self.connector.join(*parts)

    def on_disk(self):
        """Every file and folder under the base folder, as relative paths."""
        return sorted(str(path.relative_to(self.folder)) for path in self.folder.rglob("*"))


def _based(connection, folder, path):
    connection.path = path
    connection.save()
    return connection, folder


def _sftp(request, organization):
    sshd = request.getfixturevalue("sshd")
    folder = sshd.make_folder(f"contract-{uuid.uuid4().hex[:8]}")
    return _based(request.getfixturevalue("sftp_connection"), folder, str(folder))


def _ftp(fixture):
    def make(request, organization):
        ftpd = request.getfixturevalue("ftpd")
        folder = ftpd.make_folder(f"contract-{uuid.uuid4().hex[:8]}")
        return _based(request.getfixturevalue(fixture), folder, folder.name)

    return make


def _legacy_ftp(request, organization):
    """A server like IIS: no MLSD/MLST, and rename refuses to replace an existing file."""
    ftpd = request.getfixturevalue("ftpd")
    folder = ftpd.make_folder(f"contract-{uuid.uuid4().hex[:8]}")
    connection = Connection.objects.create(organization=organization, name="Old FTP", kind="ftp", host=ftpd.host,
                                           port=ftpd.legacy_port, username=ftpd.username,
                                           secrets={"password": ftpd.password})
    return _based(connection, folder, folder.name)


def _smb(request, organization):
    smbd = request.getfixturevalue("smbd")
    folder = smbd.make_folder(f"contract-{uuid.uuid4().hex[:8]}")
    return _based(request.getfixturevalue("smb_connection"), folder, folder.name)


def _local(request, organization):
    folder = request.getfixturevalue("tmp_path") / f"contract-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    connection = Connection.objects.create(organization=organization, name="Drop folder", kind="local",
                                           path=str(folder))
    return connection, folder


# name: (how to make it, whether it creates a missing folder). The servers' params are marked by hand: the
# store is chosen at run time, so tests/conftest.py cannot see their server fixtures.
STORES = {
    "sftp": (_sftp, False),
    "ftp": (_ftp("ftp_connection"), False),
    "ftps": (_ftp("ftps_connection"), False),
    "legacy ftp": (_legacy_ftp, False),
    "smb": (_smb, False),
    "local folder": (_local, True),
}


@pytest.fixture(params=[pytest.param(name, marks=() if name == "local folder" else pytest.mark.servers)
                        for name in STORES])
def store(request, organization):
    make, creates_missing_folders = STORES[request.param]
    connection, folder = make(request, organization)
    return Store(connection.connector(), folder, creates_missing_folders)


def test_round_trip(store, tmp_path):
    """put (temporary name, then rename), list by wildcard, get, rename, exists, delete, overwrite."""
    check_round_trip(store.connector, store.folder, tmp_path)


def test_put_writes_a_temporary_name_in_the_same_folder_then_renames_it(store, tmp_path):
    seen = []
    with store.connector.session() as session:
        upload = session.upload

        def watching_upload(local_path, remote_path):
            # While the bytes travel, the final name does not exist yet: a reader never sees half a file.
            seen.append((remote_path, session.exists(store.path("report.csv"))))
            upload(local_path, remote_path)

        session.upload = watching_upload
        session.put(local_file(tmp_path, "r.csv", b"a,b\n"), store.path("report.csv"))

    [(temporary, final_existed)] = seen
    folder, _, name = temporary.rpartition("/")
    assert folder == store.path("report.csv").rpartition("/")[0]
    assert name.startswith(".report.csv.") and name.endswith(".part")
    assert not final_existed
    assert store.on_disk() == ["report.csv"]
    assert (store.folder / "report.csv").read_bytes() == b"a,b\n"


def test_overwrite_off_refuses_an_existing_file_and_leaves_it_intact(store, tmp_path):
    (store.folder / "report.csv").write_bytes(b"original")
    with store.connector.session() as session, pytest.raises(ConnectorError) as caught:
        session.put(local_file(tmp_path, "r.csv", b"replacement"), store.path("report.csv"), overwrite=False)
    assert caught.value.message == f"{store.path('report.csv')} already exists and overwriting is off"
    assert store.on_disk() == ["report.csv"]
    assert (store.folder / "report.csv").read_bytes() == b"original"


def test_overwrite_on_replaces_an_existing_file(store, tmp_path):
    (store.folder / "report.csv").write_bytes(b"original, and longer than the new one")
    with store.connector.session() as session:
        session.put(local_file(tmp_path, "r.csv", b"new"), store.path("report.csv"), overwrite=True)
    assert store.on_disk() == ["report.csv"]
    assert (store.folder / "report.csv").read_bytes() == b"new"


def test_a_missing_folder_is_created_or_refused_per_the_store(store, tmp_path):
    target = store.path("new", "deeper", "x.csv")
    with store.connector.session() as session:
        if store.creates_missing_folders:
            session.put(local_file(tmp_path, "x.csv", b"x"), target)
        else:
            with pytest.raises(ConnectorError) as caught:
                session.put(local_file(tmp_path, "x.csv", b"x"), target)
            # The refusal names the path the user asked for, not the temporary name.
            assert "new/deeper" in caught.value.message and ".part" not in caught.value.message
    if store.creates_missing_folders:
        assert store.on_disk() == ["new", "new/deeper", "new/deeper/x.csv"]
        assert (store.folder / "new" / "deeper" / "x.csv").read_bytes() == b"x"
    else:
        assert store.on_disk() == []


def test_a_name_with_spaces_and_non_ascii_letters(store, tmp_path):
    content = "Zoë;Ørsted\n".encode()
    with store.connector.session() as session:
        session.put(local_file(tmp_path, "odd.csv", content), store.path(ODD_NAME))
        assert session.list(store.path(), "*März*.csv") == [ODD_NAME]
        assert session.exists(store.path(ODD_NAME))
        session.get(store.path(ODD_NAME), str(tmp_path / "back.csv"))
    assert (tmp_path / "back.csv").read_bytes() == content
    assert [unicodedata.normalize("NFC", name) for name in store.on_disk()] == [ODD_NAME]
    assert (store.folder / ODD_NAME).read_bytes() == content


def test_an_empty_file(store, tmp_path):
    with store.connector.session() as session:
        session.put(local_file(tmp_path, "empty.csv", b""), store.path("empty.csv"))
        assert session.list(store.path(), "*.csv") == ["empty.csv"]
        (tmp_path / "back.csv").write_bytes(b"left over")
        session.get(store.path("empty.csv"), str(tmp_path / "back.csv"))
    assert (tmp_path / "back.csv").read_bytes() == b""
    assert (store.folder / "empty.csv").stat().st_size == 0


def test_a_file_larger_than_one_transfer_block(store, tmp_path):
    with store.connector.session() as session:
        session.put(local_file(tmp_path, "large.bin", LARGE), store.path("large.bin"))
        session.get(store.path("large.bin"), str(tmp_path / "back.bin"))
    assert (store.folder / "large.bin").read_bytes() == LARGE
    assert (tmp_path / "back.bin").read_bytes() == LARGE


def test_the_connection_test_counts_files_and_the_folders_where_the_protocol_tells_them(store):
    (store.folder / "2026").mkdir()
    (store.folder / "2027").mkdir()
    (store.folder / "readme.txt").write_bytes(b"hello")
    message = store.connector.test()
    tells_folders = store.connector.connection.kind in ("sftp", "smb", "local")  # FTP's listings do not say cheaply
    assert ("; 1 file" + (" and 2 folders in " if tells_folders else " in ")) in message, message
