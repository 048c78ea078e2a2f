"""FTP and explicit FTPS (AUTH TLS) through ftplib: passive mode, timeouts on control and data sockets."""
import contextlib
import ftplib
import os
import posixpath
import ssl

from django import forms

from connections.protocols.base import (
    ConnectorError, FileSession, FileStore, password_secret, verify_tls_option,
)
from connections.protocols.network import describe_network_error
from connections.protocols.registry import register

PERMISSION_WORDS = ("permission", "privilege", "denied", "not allowed", "forbidden")
UNSUPPORTED = ("500", "501", "502", "504")
NO_FILES_WORDS = ("no files", "no such file", "not found", "empty")
ACTIONS = {"folder": "listing", "download": "download", "upload": "upload", "rename": "rename",
           "delete": "deletion", "verify": "check"}
# Server-side checksums, strongest first: RFC draft HASH (FileZilla Server, ProFTPD mod_digest, IIS via
# add-ons), then the older X-commands. Each names the algorithm its reply carries.
DIGEST_COMMANDS = (("XSHA256", "sha256"), ("XMD5", "md5"))
HASH_ALGORITHMS = {"SHA-256": "sha256", "SHA-512": "sha512", "SHA-1": "sha1", "MD5": "md5"}


def flag(value, default):
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def reply_code(exc):
    text = str(exc)
    return text[:3] if text[:3].isdigit() else ""


class TlsClient(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on each data connection.

    Many servers (vsftpd's require_ssl_reuse, FileZilla Server) refuse data connections that don't.
    """

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            except BaseException:
                conn.close()
                raise
        return conn, size


class FtpSession(FileSession):
    def __init__(self, store, client, features):
        self.store = store
        self.client = client
        self.where = f"{store.connection.host}:{store.port}"
        # RFC 3659 servers announce MLSD and MLST together as the "MLST" feature; vsftpd and IIS often lack it.
        self.use_mlsd = self.use_mlst = "MLST" in features
        self.features = features

    # --- errors ------------------------------------------------------------------------------------

    def failure(self, exc, path, step):
        """A ConnectorError for an ftplib failure while working on `path`."""
        said = self.store.scrub(str(exc)).strip()
        action = ACTIONS.get(step, step)
        if isinstance(exc, ftplib.error_perm):
            code = reply_code(exc)
            if code == "530":
                return ConnectorError(f"The FTP server no longer accepts the login (it said: {said})",
                                      step="authentication")
            if any(word in said.lower() for word in PERMISSION_WORDS):
                if step == "upload":  # name the folder: the file itself is a temporary name
                    path = f"folder {posixpath.dirname(path) or '/'}"
                return ConnectorError(f"Permission denied on {path} (the FTP server said: {said})", step="permission")
            if code == "550":
                return ConnectorError(f"{path} does not exist or cannot be used (the FTP server said: {said})",
                                      step=step)
            return ConnectorError(f"The FTP server refused the {action} of {path}: {said}", step=step)
        if isinstance(exc, ftplib.error_temp):
            return ConnectorError(f"The FTP server could not complete the {action} of {path} now: {said}",
                                  retryable=True, step=step)
        if isinstance(exc, TimeoutError):
            return ConnectorError(f"No answer from {self.where} within {self.store.timeout:g} seconds during the "
                                  f"{action} of {path}", retryable=True, step="timeout")
        if isinstance(exc, (OSError, EOFError)):
            reason = said or "the server closed the connection"
            return ConnectorError(f"The connection to {self.where} broke during the {action} of {path}: {reason}",
                                  retryable=True, step=step)
        return ConnectorError(f"Unexpected FTP reply during the {action} of {path}: {said}", retryable=True,
                              step=step)

    # --- helpers -----------------------------------------------------------------------------------

    def size(self, path):
        """The size the server reports (binary mode, which SIZE needs on many servers); None if unsupported."""
        self.client.voidcmd("TYPE I")
        try:
            return self.client.size(path)
        except ftplib.error_perm as exc:
            if reply_code(exc) in UNSUPPORTED:
                return None
            raise

    def is_file(self, path):
        try:
            if self.size(path) is not None:
                return True
        except ftplib.error_perm:
            return False
        # No SIZE command: anything we cannot change into is taken for a file.
        home = self.client.pwd()
        try:
            self.client.cwd(path)
        except ftplib.error_perm:
            return True
        self.client.cwd(home)
        return False

    def names(self, folder):
        """Base names NLST returns for `folder` (files and folders alike)."""
        try:
            listed = self.client.nlst(folder) if folder else self.client.nlst()
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            if any(word in str(exc).lower() for word in ("no files", "empty")):
                return []  # some servers answer an empty folder with 450/550 "No files found"
            raise
        return [name for name in (posixpath.basename(item.rstrip("/")) for item in listed)
                if name not in ("", ".", "..")]

    # --- FileSession -------------------------------------------------------------------------------

    def listdir(self, folder):
        try:
            if self.use_mlsd:
                try:
                    return [name for name, facts in self.client.mlsd(folder or "")
                            if facts.get("type", "").lower() == "file"]
                except ftplib.error_perm as exc:
                    if reply_code(exc) not in UNSUPPORTED:
                        raise
                    self.use_mlsd = False
            return [name for name in self.names(folder) if self.is_file(posixpath.join(folder, name))]
        except ftplib.all_errors as exc:
            raise self.failure(exc, f"folder {folder or '/'}", "folder") from None

    def get(self, remote_path, local_path):
        with open(local_path, "wb") as out:
            try:
                expected = self.size(remote_path)
                self.client.retrbinary(f"RETR {remote_path}", out.write, blocksize=1 << 16)
            except ftplib.all_errors as exc:
                raise self.failure(exc, remote_path, "download") from None
        received = os.path.getsize(local_path)
        if expected is not None and received != expected:
            raise ConnectorError(f"{remote_path}: expected {expected} bytes, received {received}", retryable=True,
                                 step="download")
        return local_path

    def upload(self, local_path, remote_path):
        sent = os.path.getsize(local_path)
        with open(local_path, "rb") as source:
            try:
                self.client.storbinary(f"STOR {remote_path}", source, blocksize=1 << 16)
                stored = self.size(remote_path)
            except ftplib.all_errors as exc:
                raise self.failure(exc, remote_path, "upload") from None
        if stored is not None and stored != sent:
            raise ConnectorError(f"{remote_path}: sent {sent} bytes but the server stored {stored}", retryable=True,
                                 step="upload")

    def rename(self, old_path, new_path, overwrite=False):
        # Between this check and RNTO another client could create the target; FTP offers no atomic "no replace".
        if not overwrite and self.exists(new_path):
            raise ConnectorError(f"{new_path} already exists and overwriting is off", step="rename")
        try:
            try:
                self.client.rename(old_path, new_path)
            except ftplib.error_perm:
                if not (overwrite and self.exists(new_path)):
                    raise
                # IIS and others refuse to rename over an existing file: replace it in two steps.
                self.client.delete(new_path)
                self.client.rename(old_path, new_path)
        except ftplib.all_errors as exc:
            raise self.failure(exc, new_path, "rename") from None

    def delete(self, remote_path):
        try:
            self.client.delete(remote_path)
        except ftplib.all_errors as exc:
            raise self.failure(exc, remote_path, "delete") from None

    def exists(self, remote_path):
        try:
            if self.use_mlst:
                try:
                    self.client.sendcmd(f"MLST {remote_path}")
                    return True
                except ftplib.error_perm as exc:
                    if reply_code(exc) not in UNSUPPORTED:
                        if reply_code(exc) == "530":
                            raise
                        return False  # 550: no such file (or one we may not see)
                    self.use_mlst = False
            if self.is_file(remote_path):
                return True
            folder, name = posixpath.split(remote_path)
            try:
                return name in self.names(folder)
            except ftplib.error_perm:
                return False  # the folder itself is missing
        except ftplib.all_errors as exc:
            raise self.failure(exc, remote_path, "folder") from None

    def size_of(self, remote_path):
        try:
            return self.size(remote_path)
        except ftplib.all_errors as exc:
            raise self.failure(exc, remote_path, "verify") from None

    def digest_of(self, remote_path):
        try:
            if "HASH" in self.features:
                return self._hash(remote_path)
            for command, algorithm in DIGEST_COMMANDS:
                if command in self.features:
                    reply = self.client.sendcmd(f"{command} {remote_path}")
                    return algorithm, reply[4:].split()[0].lower()
        except ftplib.error_perm as exc:
            if reply_code(exc) in UNSUPPORTED:
                return None
            raise self.failure(exc, remote_path, "verify") from None
        except ftplib.all_errors as exc:
            raise self.failure(exc, remote_path, "verify") from None
        return None

    def _hash(self, remote_path):
        """HASH (draft-bryan-ftpext-hash): ask for SHA-256 when offered; the reply names what it used:
        "213 SHA-256 0-1234 <hex> <path>"."""
        with contextlib.suppress(ftplib.error_perm):
            self.client.sendcmd("OPTS HASH SHA-256")
        words = self.client.sendcmd(f"HASH {remote_path}")[4:].split()
        algorithm = HASH_ALGORITHMS.get(words[0].upper()) if words else None
        if algorithm is None or len(words) < 3:
            return None
        return algorithm, words[2].lower()

    def close(self):
        try:
            self.client.quit()
        except ftplib.all_errors:
            self.client.close()


@register
class FtpStore(FileStore):
    kind = "ftp"
    label = "FTP / FTPS"
    fields = ("host", "port", "username", "path")
    secret_fields = {"password": password_secret()}
    option_fields = {"tls": forms.BooleanField(label="Use TLS (FTPS)", required=False),
                     "verify_tls": verify_tls_option()}
    default_port = 21

    @property
    def port(self):
        return self.connection.port or self.default_port

    @property
    def use_tls(self):
        return flag(self.connection.options.get("tls"), False)

    def tls_context(self):
        context = ssl.create_default_context()
        if not flag(self.connection.options.get("verify_tls"), True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def session(self):
        host = self.connection.host
        if not host:
            raise ConnectorError("No host is set", step="settings")
        client = TlsClient(context=self.tls_context(), timeout=self.timeout) if self.use_tls else \
            ftplib.FTP(timeout=self.timeout)
        try:
            self._connect(client, host)
            self._secure(client, host)
            if self.use_tls:
                self.note_certificate(client.sock, f"TLS certificate of {host}")
            self._login(client)
            if self.use_tls:
                client.prot_p()
            client.set_pasv(True)
            features = self._features(client)
        except ConnectorError:
            client.close()
            raise
        except ftplib.all_errors as exc:
            client.close()
            reason = self.scrub(exc) or "the server closed the connection"
            raise ConnectorError(f"Setting up the FTP session with {host}:{self.port} failed: {reason}",
                                 retryable=not isinstance(exc, ftplib.error_perm),
                                 step="timeout" if isinstance(exc, TimeoutError) else "connect") from None
        return FtpSession(self, client, features)

    def _connect(self, client, host):
        try:
            client.connect(host, self.port, timeout=self.timeout)
        except (ftplib.error_temp, ftplib.error_perm, ftplib.error_reply, EOFError) as exc:
            raise ConnectorError(f"The FTP server at {host}:{self.port} turned the connection away: "
                                 f"{self.scrub(exc) or 'it closed the connection'}", retryable=True,
                                 step="connect") from None
        except OSError as exc:
            if isinstance(exc, TimeoutError) and client.sock is not None:
                raise ConnectorError(f"{host}:{self.port} accepted the connection but sent no FTP greeting within "
                                     f"{self.timeout:g} seconds", retryable=True, step="timeout") from None
            raise describe_network_error(exc, host, self.port) from None

    def _secure(self, client, host):
        if not self.use_tls:
            return
        try:
            client.auth()
        except ftplib.error_perm as exc:
            raise ConnectorError(f"The FTP server at {host}:{self.port} does not offer explicit TLS (AUTH TLS): "
                                 f"{self.scrub(exc)}. Turn TLS off only if the server cannot encrypt.",
                                 step="connect") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectorError(f"The TLS certificate of {host}:{self.port} was not accepted "
                                 f"({exc.verify_message}). If the server uses a self-signed certificate you trust, "
                                 "turn off certificate verification.", step="connect") from None
        except ssl.SSLError as exc:
            raise ConnectorError(f"The TLS handshake with {host}:{self.port} failed: {exc.reason or exc}",
                                 step="connect") from None

    def _login(self, client):
        user = self.connection.username or "anonymous"
        try:
            client.login(user, self.secret("password"))  # FTP_TLS: AUTH already done
        except ftplib.error_perm as exc:
            if reply_code(exc) == "530":
                raise ConnectorError(f"Authentication failed for user '{user}': check the user name and password",
                                     step="authentication") from None
            raise ConnectorError(f"The FTP server refused the login of '{user}': {self.scrub(exc)}",
                                 step="authentication") from None

    @staticmethod
    def _features(client):
        try:
            reply = client.sendcmd("FEAT")
        except ftplib.all_errors:
            return set()
        return {line.strip().split(" ")[0].upper() for line in reply.splitlines()[1:-1] if line.strip()}

    def test(self):
        with self.session() as session:
            found = session.contents(self.join())
        security = "TLS on the control and data connections" if self.use_tls else "plain FTP (not encrypted)"
        return f"Connected with {security}; {found} in {self.join() or 'the login folder'}."
