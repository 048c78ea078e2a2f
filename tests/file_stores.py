"""Helpers for the file-store tests; tests/test_file_store_contract.py runs `check_round_trip` on every store."""

ALL_BYTES = bytes(range(256)) * 64


def local_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def check_round_trip(store, folder, tmp_path):
    """put (temporary name, then rename), list by wildcard, get, rename, exists, delete, overwrite; `folder` is
    the store's base folder as seen on the server's own disk."""
    (folder / "subfolder.csv").mkdir()  # a folder whose name matches the wildcard must not be listed
    with store.session() as session:
        session.put(local_file(tmp_path, "a.csv", b"id,name\n1,Zo\xc3\xab\n"), store.join("a.csv"))
        session.put(local_file(tmp_path, "bytes.bin", ALL_BYTES), store.join("bytes.csv"))
        session.put(local_file(tmp_path, "note.txt", b"x"), store.join("note.txt"))

        assert session.list(store.join(), "*.csv") == ["a.csv", "bytes.csv"]
        session.get(store.join("bytes.csv"), str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == ALL_BYTES

        session.rename(store.join("a.csv"), store.join("renamed.csv"))
        assert not session.exists(store.join("a.csv"))
        assert session.exists(store.join("renamed.csv"))
        session.delete(store.join("note.txt"))
        assert not session.exists(store.join("note.txt"))

        # SMB's and some FTP servers' rename never replaces a file: overwriting must still work.
        session.put(local_file(tmp_path, "new.csv", b"new"), store.join("renamed.csv"), overwrite=True)

    assert sorted(p.name for p in folder.iterdir()) == ["bytes.csv", "renamed.csv", "subfolder.csv"]
    assert (folder / "bytes.csv").read_bytes() == ALL_BYTES
    assert (folder / "renamed.csv").read_bytes() == b"new"
