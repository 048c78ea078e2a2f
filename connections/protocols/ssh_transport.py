"""An authenticated paramiko Transport with the host key pinned, and the login settings declared alike by SFTP
and SSH: a password, or a private key, optionally with the OpenSSH user certificate an SSH CA signed for it."""
import base64
import binascii
import datetime
import hashlib
import io
from dataclasses import dataclass

import paramiko
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding, PublicFormat, SSHCertificate, SSHCertificateType, load_ssh_public_identity,
)
from django import forms

from connections.protocols.base import ConnectorError, Secret, password_secret
from connections.protocols.network import open_socket

KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def fingerprint(key):
    return blob_fingerprint(key.asbytes())


def blob_fingerprint(blob):
    """SHA256 fingerprint of a public key's wire blob, as `ssh-keygen -l` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# --- what SFTP and SSH connections declare (each in its own module, from these) --------------------------------

CERTIFICATE = "certificate"
# An OpenSSH certificate's valid_before meaning "no end" (ssh-keygen -s without -V).
FOREVER = 2 ** 64 - 1


@dataclass(frozen=True)
class Certificate:
    """What a user needs to recognise an OpenSSH user certificate, and what logging in with it needs."""

    key_id: str
    principals: tuple
    valid_after: datetime.datetime | None  # None: valid since ever
    valid_before: datetime.datetime | None  # None: valid for ever
    blob: bytes  # the certificate as sent to the server
    key_blob: bytes  # the public key it certifies

    @property
    def what(self):
        """Its name among a connection's expiries."""
        return f"OpenSSH certificate {self.key_id}"

    @property
    def expires_on(self):
        return self.valid_before.date() if self.valid_before else None

    @property
    def key_fingerprint(self):
        return blob_fingerprint(self.key_blob)

    @property
    def validity(self):
        """"2026-11-29 00:48 UTC to 2027-11-28 00:48 UTC", "from ..., with no end", "always"."""
        start, end = (_when(moment) if moment else None for moment in (self.valid_after, self.valid_before))
        if start and end:
            return f"{start} to {end}"
        return f"from {start}, with no end" if start else (f"until {end}" if end else "always")

    @property
    def summary(self):
        """For the connection page: "key id alice@example.com; principals: alice, sftp; valid ... to ...; for the
        key SHA256:..."."""
        principals = ", ".join(self.principals) if self.principals else "any user (none named)"
        return (f"key id {self.key_id}; principals: {principals}; valid {self.validity}; "
                f"for the key {self.key_fingerprint}")

    def check_period(self, early=False):
        """Refuse a certificate outside its validity (the server would, with a bare "Authentication failed"); with
        `early`, only one that has expired."""
        now = datetime.datetime.now(datetime.UTC)
        if self.valid_before and now >= self.valid_before:
            raise ConnectorError(f"The OpenSSH certificate {self.key_id} expired on {_when(self.valid_before)}: "
                                 "ask your SSH CA for a new one", step="authentication")
        if not early and self.valid_after and now < self.valid_after:
            raise ConnectorError(f"The OpenSSH certificate {self.key_id} is not valid before "
                                 f"{_when(self.valid_after)} (valid {self.validity})", step="authentication")

    def check_key(self, key):
        """Refuse a certificate signed for another key than the private key `key` (a paramiko PKey)."""
        if key.asbytes() != self.key_blob:
            raise ConnectorError(f"The OpenSSH certificate {self.key_id} is for another key ({self.key_fingerprint}) "
                                 f"than the private key ({fingerprint(key)}): paste the certificate of this key, or "
                                 "the key it was signed for", step="authentication")


def _when(moment):
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _moment(seconds, unbounded):
    """The instant of a certificate's bound; None for `unbounded`, and for an end past what a date can hold."""
    if seconds == unbounded:
        return None
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None if unbounded == FOREVER else datetime.datetime.max.replace(tzinfo=datetime.UTC)


NOT_A_CERTIFICATE = ("This is not an OpenSSH certificate: paste the one line of the key's -cert.pub file (it starts "
                     "with ssh-ed25519-cert-v01@openssh.com, ecdsa-sha2-nistp256-cert-v01@openssh.com or "
                     "ssh-rsa-cert-v01@openssh.com)")


def read_certificate(text):
    """The OpenSSH user certificate in `text` (one line, as in id_ed25519-cert.pub), read and its signature checked
    with `cryptography`; ConnectorError (step "authentication") saying why when it is not one."""
    text = (text or "").strip()
    if "PRIVATE KEY" in text:  # never echoed: only said what it is
        raise ConnectorError("This is a private key: paste the certificate (the -cert.pub file), which is public",
                             step="authentication")
    try:
        certificate = load_ssh_public_identity(text.encode())
    except (ValueError, UnsupportedAlgorithm, UnicodeError):
        raise ConnectorError(NOT_A_CERTIFICATE, step="authentication") from None
    if not isinstance(certificate, SSHCertificate):
        raise ConnectorError("This is a public key, not a certificate: paste the -cert.pub file your SSH CA "
                             "signed for the key", step="authentication")
    if certificate.type != SSHCertificateType.USER:
        raise ConnectorError("This is a host certificate (it proves a server's identity): a login needs a user "
                             "certificate", step="authentication")
    key_id = certificate.key_id.decode("utf-8", errors="replace").strip() or "(no key id)"
    try:
        certificate.verify_cert_signature()
    except InvalidSignature:
        raise ConnectorError(f"The OpenSSH certificate {key_id} does not match its CA's signature: it was altered "
                             "or damaged; paste it again", step="authentication") from None
    except UnsupportedAlgorithm:
        pass  # a CA key type cryptography cannot verify with: the server checks the signature in any case
    try:
        blob = base64.b64decode(text.split()[1], validate=True)
    except (IndexError, binascii.Error):  # cannot happen after cryptography read it; kept an error all the same
        raise ConnectorError(NOT_A_CERTIFICATE, step="authentication") from None
    key_line = certificate.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return Certificate(
        key_id=key_id,
        principals=tuple(name.decode("utf-8", errors="replace") for name in certificate.valid_principals),
        valid_after=_moment(certificate.valid_after, 0),
        valid_before=_moment(certificate.valid_before, FOREVER),
        blob=blob, key_blob=base64.b64decode(key_line.split()[1]))


def certificate_of(options):
    """The certificate set in a connection's options, or None."""
    text = (options or {}).get(CERTIFICATE)
    return read_certificate(text) if text else None


class OpenSshLogin:
    """The login settings SFTP and SSH connections declare and check alike (each puts this class before its base
    class): a password, or a private key and its passphrase (secrets), optionally with the key's OpenSSH user
    certificate (a public option)."""

    secret_fields = {"password": password_secret(), "private_key": Secret("Private key", multiline=True),
                     "passphrase": Secret("Key passphrase")}
    option_fields = {CERTIFICATE: forms.CharField(
        label="OpenSSH certificate", required=False, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "class": "font-monospace", "spellcheck": "false"}),
        help_text="Only when your organization's SSH CA signed your key: paste the one line of the key's "
                  "-cert.pub file (ssh-ed25519-cert-v01@openssh.com AAAA...). It is used with the private key "
                  "above, and its end date is noted for expiry reminders.")}
    # A renewed certificate is the same login to the same server: the stored key stays.
    harmless_options = frozenset({CERTIFICATE})

    @classmethod
    def validate(cls, values):
        """A pasted certificate must be one, in its validity period, and for the private key being saved (the one
        entered now, else the stored one); a key that cannot be read without its passphrase is checked at the
        test instead."""
        errors = super().validate(values)
        if not values.get(CERTIFICATE):
            return errors
        try:
            certificate = read_certificate(values[CERTIFICATE])
            certificate.check_period(early=True)  # one that becomes valid later may be saved ahead
        except ConnectorError as exc:
            errors[CERTIFICATE] = exc.message
            return errors
        if not values.get("private_key"):
            errors[CERTIFICATE] = ("A certificate is used with the private key it was signed for: enter that "
                                   "private key too")
            return errors
        try:
            key = load_private_key(values["private_key"], values.get("passphrase"))
        except ConnectorError:
            return errors
        try:
            certificate.check_key(key)
        except ConnectorError as exc:
            errors[CERTIFICATE] = exc.message
        return errors

    @classmethod
    def settings_expiries(cls, options):
        try:
            certificate = certificate_of(options)
        except ConnectorError:
            return []
        return [(certificate.what, certificate.expires_on)] if certificate and certificate.expires_on else []

    @classmethod
    def readable_option(cls, key, value):
        if key != CERTIFICATE or not value:
            return super().readable_option(key, value)
        try:
            return certificate_of({key: value}).summary
        except ConnectorError as exc:
            return exc.message


def login_key(connector):
    """The private key to log in with (None: log in with the password), its certificate loaded when one is set;
    the certificate checked against the key and the clock before anything is sent."""
    certificate = certificate_of(connector.connection.options)
    if not connector.secret("private_key"):
        if certificate:
            raise ConnectorError(f"The OpenSSH certificate {certificate.key_id} is set, but no private key: enter "
                                 "the private key it was signed for", step="authentication")
        return None, None
    key = load_private_key(connector.secret("private_key"), connector.secret("passphrase"))
    if certificate:
        certificate.check_key(key)
        certificate.check_period()
        # A Message, never the text: paramiko would read a text naming a file as that file.
        key.load_certificate(paramiko.Message(certificate.blob))
    return key, certificate


def load_private_key(text, passphrase):
    last_error = None
    for cls in KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise ConnectorError("The private key is encrypted: enter its passphrase", step="authentication") from None
        except (paramiko.SSHException, ValueError) as exc:
            last_error = exc
    raise ConnectorError(
        "The private key could not be read (wrong passphrase, or not an OpenSSH/PEM RSA, ECDSA or Ed25519 key)",
        step="authentication",
    ) from (None if last_error else None)


def check_host_key(connection, key):
    """Pin the key on first use; refuse any later connection that presents another key."""
    offered = f"{key.get_name()} {key.get_base64()}"
    if not connection.host_key:
        connection.host_key = offered
        if connection.pk:
            type(connection).objects.filter(pk=connection.pk, host_key="").update(host_key=offered)
        return
    if connection.host_key.strip() != offered:
        raise ConnectorError(
            f"The server's host key has changed (it now offers {key.get_name()} {fingerprint(key)}). This can mean "
            "someone is intercepting the connection. If the server was reinstalled, clear the pinned host key on the "
            "connection to accept the new one.",
            step="host key",
        )


def _certificate_refused(certificate, username, exc):
    """The server's answer to a certificate, and the likeliest causes: a CA it does not trust, a user the
    certificate does not name."""
    answer = str(exc).strip() or type(exc).__name__
    causes = "check that the server trusts the CA that signed it (sshd's TrustedUserCAKeys)"
    if certificate.principals and username not in certificate.principals:
        causes += f", and that it may log in as {username!r}: the certificate names {', '.join(certificate.principals)}"
    return ConnectorError(f"The server refused the OpenSSH certificate {certificate.key_id} for user {username!r} "
                          f"({answer}): {causes}", step="authentication")


def _prefer_ciphers(transport, preferred):
    options = transport.get_security_options()
    supported = [name for name in preferred if name in options.ciphers]
    options.ciphers = tuple(supported) + tuple(name for name in options.ciphers if name not in supported)


def _handshake_timeout(host, port, timeout):
    return ConnectorError(f"{host}:{port} accepted the connection but did not complete the SSH handshake within "
                          f"{timeout:g} seconds", retryable=True, step="timeout")


def open_transport(connector, *, preferred_ciphers=()):
    """`preferred_ciphers` are moved to the front of the offer (never restricting it), for bulk transfers."""
    connection = connector.connection
    host, port = connection.host, connection.port or 22
    if not host:
        raise ConnectorError("No host is set", step="settings")
    key, certificate = login_key(connector)
    sock = open_socket(host, port, connector.timeout)
    transport = paramiko.Transport(sock)
    if preferred_ciphers:
        _prefer_ciphers(transport, preferred_ciphers)
    transport.banner_timeout = connector.timeout
    transport.auth_timeout = connector.timeout
    try:
        transport.start_client(timeout=connector.timeout)
        if not transport.initial_kex_done:  # start_client returns quietly when its time is up
            raise TimeoutError
        check_host_key(connection, transport.get_remote_server_key())
        username = connection.username
        if key is not None:
            transport.auth_publickey(username, key)
        elif connector.secret("password"):
            transport.auth_password(username, connector.secret("password"))
        else:
            raise ConnectorError("Set a password or a private key", step="authentication")
        transport.set_keepalive(30)
        if certificate and certificate.expires_on:
            connector.seen_expiries.append((certificate.what, certificate.expires_on))
        return transport
    except paramiko.AuthenticationException as exc:
        transport.close()
        if certificate:
            raise _certificate_refused(certificate, username, exc) from None
        if key is not None:
            raise ConnectorError(f"Authentication failed for user {username!r}: the server does not accept the key "
                                 f"{fingerprint(key)} (list its public key in the user's authorized_keys, or set the "
                                 "OpenSSH certificate your SSH CA signed for it)", step="authentication") from None
        raise ConnectorError(f"Authentication failed for user {username!r}", step="authentication") from None
    except paramiko.SSHException as exc:
        transport.close()
        if isinstance(exc.__context__, TimeoutError):  # paramiko wraps a missing banner's timeout
            raise _handshake_timeout(host, port, connector.timeout) from None
        raise ConnectorError(connector.scrub(f"SSH negotiation with {host}:{port} failed: {exc}"), retryable=True,
                             step="connect") from None
    except TimeoutError:
        transport.close()
        raise _handshake_timeout(host, port, connector.timeout) from None
    except (OSError, EOFError) as exc:
        transport.close()
        raise ConnectorError(f"Connection to {host}:{port} dropped: {exc or type(exc).__name__}", retryable=True,
                             step="connect") from None
    except BaseException:
        transport.close()
        raise
