"""GPG public keys: check a pasted key, and encrypt files to it.

Every operation runs in its own throwaway keyring (a temporary GNUPGHOME), so no key ever lingers on
the server and two runs never share gpg state.
"""
import contextlib
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import gnupg

from django import forms

from connections.protocols.base import KEY, Connector, ConnectorError
from connections.protocols.registry import register

ALGORITHMS = {"1": "RSA", "2": "RSA", "3": "RSA", "16": "ElGamal", "17": "DSA", "18": "ECDH", "19": "ECDSA",
              "22": "EdDSA"}
SECRET_KEY_REFUSAL = "This is a private key: paste the PUBLIC key only (gpg --armor --export)"


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: list = field(default_factory=list)
    expires: datetime | None = None
    algorithm: str = ""

    @property
    def uid(self):
        return self.uids[0] if self.uids else "(no user id)"

    @property
    def expires_text(self):
        return self.expires.strftime("%Y-%m-%d") if self.expires else "never"


@contextlib.contextmanager
def temporary_gpg():
    """A python-gnupg handle on an empty keyring that is deleted, agent included, afterwards."""
    with tempfile.TemporaryDirectory(prefix="etl-gpg-", ignore_cleanup_errors=True) as home:
        try:
            gpg = gnupg.GPG(gnupghome=home)
        except (OSError, ValueError):
            raise ConnectorError("GnuPG (gpg) is not installed or cannot run on this server", step="settings") from None
        try:
            yield gpg
        finally:
            kill_agent(home)


def kill_agent(home):
    # gpg starts an agent per home on demand; left running it would outlive the deleted folder.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, timeout=10,
                       check=False)


def _timestamp(value):
    return datetime.fromtimestamp(int(value), tz=timezone.utc) if value else None


def _algorithm(key):
    name = ALGORITHMS.get(key.get("algo", ""), f"algorithm {key.get('algo', '?')}")
    curve = key.get("curve")
    return f"{name} {curve}" if curve else f"{name} {key.get('length', '')}".strip()


def _describe(scanned):
    """KeyInfo of the single usable public key in gpg's listing, or the reason it cannot be used."""
    if not scanned:
        raise ConnectorError("This is not a GPG public key: paste the block that starts with "
                             "-----BEGIN PGP PUBLIC KEY BLOCK-----", step="key")
    if any(key.get("type") == "sec" for key in scanned):
        raise ConnectorError(SECRET_KEY_REFUSAL, step="key")
    if len(scanned) > 1:
        raise ConnectorError(f"The text holds {len(scanned)} keys: paste exactly one public key", step="key")
    key = scanned[0]
    info = KeyInfo(fingerprint=key["fingerprint"], uids=list(key.get("uids") or []),
                   expires=_timestamp(key.get("expires")), algorithm=_algorithm(key))
    if key.get("trust") == "r":
        raise ConnectorError(f"The key {info.fingerprint} has been revoked by its owner: ask for a current key",
                             step="key")
    if key.get("trust") == "e" or (info.expires and info.expires <= datetime.now(timezone.utc)):
        raise ConnectorError(f"The key expired on {info.expires_text}: ask its owner for a renewed public key",
                             step="key")
    # Upper-case E: the key as a whole can still encrypt (some subkey is valid for encryption).
    if "E" not in (key.get("cap") or ""):
        raise ConnectorError(f"The key {info.fingerprint} has no valid encryption subkey (it may have expired "
                             "or been revoked)", step="key")
    return info


def inspect_key(armored):
    """Check that `armored` is exactly one usable public key; return what a user needs to recognise it."""
    text = (armored or "").strip()
    if not text:
        raise ConnectorError("No public key is set: paste the key's armored text (gpg --armor --export)",
                             step="key")
    if "PRIVATE KEY BLOCK" in text:
        raise ConnectorError(SECRET_KEY_REFUSAL, step="key")
    with temporary_gpg() as gpg:
        return _describe(gpg.scan_keys_mem(text))


def _failure_reason(result):
    lines = [line.strip() for line in (result.stderr or "").splitlines()
             if line.strip() and not line.startswith("[GNUPG:]")]
    return result.status or (lines[-1] if lines else "gpg reported an error")


def encrypt_with_key(armored, source_path, target_path):
    """Encrypt `source_path` to the key (binary OpenPGP); `target_path` only ever holds a complete file."""
    info = inspect_key(armored)
    if not os.path.isfile(source_path):
        raise ConnectorError(f"{source_path} does not exist", step="key")
    target = Path(target_path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    with temporary_gpg() as gpg:
        imported = gpg.import_keys(armored.strip())
        if info.fingerprint not in (imported.fingerprints or []):
            raise ConnectorError(f"gpg could not import the key {info.fingerprint}", step="key")
        try:
            # always_trust: the key was chosen by whoever set up the connection; a throwaway keyring has no
            # web of trust to consult.
            result = gpg.encrypt_file(str(source_path), [info.fingerprint], always_trust=True, armor=False,
                                      output=str(temporary))
            if not result.ok or not temporary.exists():
                raise ConnectorError(f"Encrypting {Path(source_path).name} failed: {_failure_reason(result)}",
                                     step="key")
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
    return target


@register
class GpgPublicKey(Connector):
    kind = "gpg"
    label = "GPG public key"
    capabilities = frozenset({KEY})
    fields = ()
    option_fields = {"public_key": forms.CharField(
        label="Public key (ASCII armored)", required=False, strip=True,
        widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace"}))}
    harmless_options = frozenset({"public_key"})  # the key is the whole connection; it guards no secret

    @classmethod
    def validate(cls, values):
        """A pasted key is checked when saved, so an expired or secret key is refused next to its field."""
        errors = super().validate(values)
        try:
            inspect_key(values.get("public_key"))
        except ConnectorError as exc:
            errors["public_key"] = exc.message
        return errors

    @property
    def public_key(self):
        return self.connection.options.get("public_key") or ""

    def key_info(self):
        return inspect_key(self.public_key)

    def encrypt_file(self, source_path, target_path):
        return encrypt_with_key(self.public_key, source_path, target_path)

    def test(self):
        info = self.key_info()
        if info.expires:
            self.seen_expiries.append((f"GPG key {info.fingerprint[-16:]}", info.expires.date()))
        return f"Key {info.fingerprint} for {info.uid}, expires {info.expires_text}"
