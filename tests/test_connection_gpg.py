"""GPG public key connections: what a user sees about a pasted key, and files encrypted to it."""
import os

import pytest

from connections.protocols import ConnectorError
from connections.protocols.gpg import inspect_key
from connections.services import test_connection as run_connection_test


def test_key_is_described_by_fingerprint_uid_and_expiry(gpg_connection, gpg_keys):
    ok, message = run_connection_test(gpg_connection)

    assert ok, message
    assert message == (f"Key {gpg_keys.fingerprint} for {gpg_keys.uid}, "
                       f"expires {gpg_keys.expires:%Y-%m-%d}")
    info = inspect_key(gpg_keys.public)
    assert info.algorithm == "EdDSA ed25519"
    assert info.expires == gpg_keys.expires


def test_encrypted_file_decrypts_to_the_same_bytes(gpg_connection, gpg_keys, tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(os.urandom(300_000) + "Zürich;ß\n".encode())
    target = tmp_path / "out" / "export.csv.gpg"
    target.parent.mkdir()

    gpg_connection.connector().encrypt_file(source, target)

    encrypted = target.read_bytes()
    assert not encrypted.startswith(b"-----BEGIN PGP")  # binary, not armored
    assert source.read_bytes() not in encrypted
    assert gpg_keys.decrypt(target) == source.read_bytes()
    assert os.listdir(target.parent) == ["export.csv.gpg"]  # no temporary file left behind


def test_missing_source_file_leaves_nothing_under_the_final_name(gpg_connection, tmp_path):
    target = tmp_path / "out" / "export.csv.gpg"
    target.parent.mkdir()

    with pytest.raises(ConnectorError) as error:
        gpg_connection.connector().encrypt_file(tmp_path / "missing.csv", target)

    assert error.value.step == "key"
    assert "missing.csv does not exist" in error.value.message
    assert os.listdir(target.parent) == []


def test_private_key_is_refused(gpg_connection, gpg_keys):
    gpg_connection.options = {"public_key": gpg_keys.secret}

    ok, message = run_connection_test(gpg_connection)

    assert not ok
    assert message == "Key failed: This is a private key: paste the PUBLIC key only (gpg --armor --export)"


def test_expired_key_is_refused_with_its_date(gpg_connection, gpg_keys):
    gpg_connection.options = {"public_key": gpg_keys.expired_public}

    ok, message = run_connection_test(gpg_connection)

    assert not ok
    assert message.startswith("Key failed: The key expired on 2020-01-02")


def test_expired_key_cannot_encrypt(gpg_keys, tmp_path, gpg_connection):
    gpg_connection.options = {"public_key": gpg_keys.expired_public}
    (tmp_path / "a.csv").write_text("a\n")

    with pytest.raises(ConnectorError, match="expired on 2020-01-02"):
        gpg_connection.connector().encrypt_file(tmp_path / "a.csv", tmp_path / "a.csv.gpg")

    assert not (tmp_path / "a.csv.gpg").exists()


def test_revoked_key_is_refused(gpg_keys):
    with pytest.raises(ConnectorError, match="has been revoked") as error:
        inspect_key(gpg_keys.revoked_public)
    assert error.value.step == "key"


ARMORED_GARBAGE = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.mark.parametrize("text", ["hello, this is not a key", ARMORED_GARBAGE])
def test_text_that_is_not_a_key_is_refused(text):
    with pytest.raises(ConnectorError, match="This is not a GPG public key") as error:
        inspect_key(text)
    assert error.value.step == "key"


def test_empty_key_is_refused(gpg_connection):
    gpg_connection.options = {}

    ok, message = run_connection_test(gpg_connection)

    assert not ok
    assert "No public key is set" in message


def test_two_keys_in_one_paste_are_refused(gpg_keys):
    with pytest.raises(ConnectorError, match="The text holds 2 keys: paste exactly one public key"):
        inspect_key(gpg_keys.public + "\n" + gpg_keys.revoked_public)
