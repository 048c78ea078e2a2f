"""Windows shares (SMB2 over direct TCP, port 445) through pysmb, with a timeout on every call."""
import logging
import os
import posixpath

from smb.base import NotConnectedError, NotReadyError, SMBTimeout
from smb.smb_structs import OperationFailure, ProtocolError
from smb.SMBConnection import SMBConnection

from django import forms

from connections.protocols.base import ConnectorError, FileSession, FileStore, password_secret
from connections.protocols.network import describe_network_error
from connections.protocols.registry import register

# pysmb logs every handshake step at INFO; the portal's logs only need its failures.
logging.getLogger("SMB.SMBConnection").setLevel(logging.WARNING)

CLIENT_NAME = "etl-portal"
ACCESS_DENIED = {0xC0000022, 0xC00000BA}  # ACCESS_DENIED, FILE_IS_A_DIRECTORY
NOT_FOUND = {0xC0000034, 0xC000003A, 0xC0000033}  # OBJECT_NAME_NOT_FOUND, OBJECT_PATH_NOT_FOUND, NAME_INVALID
BAD_SHARE = {0xC00000CC}  # BAD_NETWORK_NAME
NAME_COLLISION = {0xC0000035}
LOGON_FAILURE = {0xC000006D, 0xC000006E, 0xC0000072, 0xC0000071, 0xC0000234}  # bad password, disabled, locked...
BUSY = {0xC0000043, 0xC0000056}  # SHARING_VIOLATION, DELETE_PENDING: someone else holds the file
DISK_FULL = {0xC000007F, 0xC0000044}
ACTIONS = {"folder": "listing", "download": "download", "upload": "upload", "rename": "rename",
           "delete": "deletion", "verify": "check"}


def nt_status(exc):
    """The first error status among the SMB replies pysmb kept (later ones are usually the closing reply)."""
    for message in getattr(exc, "smb_messages", ()):
        status = getattr(message, "status", 0)
        status = getattr(status, "internal_value", status)
        if isinstance(status, int) and status & 0xC0000000 == 0xC0000000:
            return status
    return None


class SmbSession(FileSession):
    def __init__(self, store, conn):
        self.store = store
        self.conn = conn
        self.share = store.connection.database
        self.timeout = store.timeout

    def failure(self, exc, path, step):
        action = ACTIONS.get(step, step)
        where = f"{self.store.connection.host}:{self.store.port}"
        if isinstance(exc, OperationFailure):
            status = nt_status(exc)
            if status in BAD_SHARE:
                return self.store.missing_share()
            if status in ACCESS_DENIED:
                if step == "upload":  # name the folder: the file itself is a temporary name
                    path = f"folder {posixpath.dirname(path) or '/'}"
                return ConnectorError(f"Permission denied on {path} in share {self.share!r}", step="permission")
            if status in NOT_FOUND:
                return ConnectorError(f"{path} does not exist in share {self.share!r}", step=step)
            if status in NAME_COLLISION:
                return ConnectorError(f"{path} already exists in share {self.share!r}", step=step)
            if status in BUSY:
                return ConnectorError(f"{path} is in use by another program on the server", retryable=True, step=step)
            if status in DISK_FULL:
                return ConnectorError(f"The share {self.share!r} is full", step=step)
            detail = f" (NT status 0x{status:08X})" if status else ""
            return ConnectorError(f"The SMB server refused the {action} of {path}{detail}: "
                                  f"{self.store.scrub(exc.message)}", step=step)
        if isinstance(exc, (SMBTimeout, TimeoutError)):
            return ConnectorError(f"No answer from {where} within {self.timeout:g} seconds during the {action} of "
                                  f"{path}", retryable=True, step="timeout")
        reason = self.store.scrub(exc) or "the server closed the connection"
        return ConnectorError(f"The connection to {where} broke during the {action} of {path}: {reason}",
                              retryable=True, step=step)

    def call(self, step, path, method, *args):
        try:
            return method(self.share, *args, timeout=self.timeout)
        except (OperationFailure, SMBTimeout, NotConnectedError, NotReadyError, OSError) as exc:
            raise self.failure(exc, path, step) from None

    def attributes(self, path, step):
        return self.call(step, path, self.conn.getAttributes, path)

    def listdir(self, folder):
        entries = self.call("folder", f"folder {folder or '/'}", self.conn.listPath, folder or "/")
        return [entry.filename for entry in entries if not entry.isDirectory]

    def subfolders(self, folder):
        entries = self.call("folder", f"folder {folder or '/'}", self.conn.listPath, folder or "/")
        return [entry.filename for entry in entries if entry.isDirectory and entry.filename not in (".", "..")]

    def get(self, remote_path, local_path):
        attributes = self.attributes(remote_path, "download")
        if attributes.isDirectory:
            raise ConnectorError(f"{remote_path} is a folder, not a file", step="download")
        with open(local_path, "wb") as out:
            self.call("download", remote_path, self.conn.retrieveFile, remote_path, out)
        received = os.path.getsize(local_path)
        if received != attributes.file_size:
            raise ConnectorError(f"{remote_path}: expected {attributes.file_size} bytes, received {received}",
                                 retryable=True, step="download")
        return local_path

    def upload(self, local_path, remote_path):
        size = os.path.getsize(local_path)
        with open(local_path, "rb") as source:
            sent = self.call("upload", remote_path, self.conn.storeFile, remote_path, source)
        if sent != size:
            raise ConnectorError(f"{remote_path}: {size} bytes to send, the server took {sent}", retryable=True,
                                 step="upload")

    def rename(self, old_path, new_path, overwrite=False):
        # SMB's rename never replaces a target, so "no overwrite" is atomic; the check only gives the clear message.
        if not overwrite and self.exists(new_path):
            raise ConnectorError(f"{new_path} already exists and overwriting is off", step="rename")
        try:
            self.conn.rename(self.share, old_path, new_path, timeout=self.timeout)
            return
        except OperationFailure as exc:
            if not (overwrite and nt_status(exc) in NAME_COLLISION):
                raise self.failure(exc, new_path, "rename") from None
        except (SMBTimeout, NotConnectedError, NotReadyError, OSError) as exc:
            raise self.failure(exc, new_path, "rename") from None
        self.delete(new_path)
        self.call("rename", new_path, self.conn.rename, old_path, new_path)

    def delete(self, remote_path):
        # deleteFiles takes a pattern and quietly matches nothing, so look the file up first.
        if self.attributes(remote_path, "delete").isDirectory:
            raise ConnectorError(f"{remote_path} is a folder, not a file", step="delete")
        self.call("delete", remote_path, self.conn.deleteFiles, remote_path)

    def exists(self, remote_path):
        try:
            self.conn.getAttributes(self.share, remote_path, timeout=self.timeout)
            return True
        except OperationFailure as exc:
            if nt_status(exc) in NOT_FOUND:
                return False
            raise self.failure(exc, remote_path, "folder") from None
        except (SMBTimeout, NotConnectedError, NotReadyError, OSError) as exc:
            raise self.failure(exc, remote_path, "folder") from None

    def size_of(self, remote_path):
        return self.attributes(remote_path, "verify").file_size

    def close(self):
        self.conn.close()


@register
class SmbShare(FileStore):
    kind = "smb"
    label = "SMB (Windows share)"
    fields = ("host", "port", "username", "database", "path")
    field_labels = {"database": "Share", "path": "Folder in the share"}
    secret_fields = {"password": password_secret()}
    option_fields = {"domain": forms.CharField(label="Windows domain", required=False),
                     "server_name": forms.CharField(label="Server name (NetBIOS)", required=False)}
    default_port = 445

    @property
    def port(self):
        return self.connection.port or self.default_port

    @property
    def account(self):
        domain = self.connection.options.get("domain") or ""
        return f"{domain}\\{self.connection.username}" if domain else self.connection.username

    def join(self, *parts):
        """A path in the share under the base folder; Windows users may type backslashes."""
        cleaned = (part.replace("\\", "/").strip("/") for part in (self.connection.path, *parts) if part)
        return "/".join(part for part in cleaned if part)

    def missing_share(self):
        return ConnectorError(f"The share {self.connection.database!r} does not exist on {self.connection.host} "
                              "(or this user may not see it)", step="settings")

    def session(self):
        connection = self.connection
        host, port = connection.host, self.port
        if not host:
            raise ConnectorError("No host is set", step="settings")
        if not connection.database:
            raise ConnectorError("No share is set: enter the share name, e.g. 'exports'", step="settings")
        conn = SMBConnection(connection.username, self.secret("password"), CLIENT_NAME,
                             connection.options.get("server_name") or host,
                             domain=connection.options.get("domain") or "", use_ntlm_v2=True, is_direct_tcp=True)
        try:
            authenticated = conn.connect(host, port, timeout=self.timeout)
        except SMBTimeout:
            conn.close()
            raise ConnectorError(f"{host}:{port} accepted the connection but did not answer as an SMB server within "
                                 f"{self.timeout:g} seconds", retryable=True, step="timeout") from None
        except (NotConnectedError, OperationFailure):
            conn.close()
            raise ConnectorError(f"{host}:{port} closed the connection during login as '{self.account}': check the "
                                 "user name, password and domain", step="authentication") from None
        except ProtocolError:
            conn.close()
            raise ConnectorError(f"{host}:{port} does not speak SMB 2.0.2 or SMB1, which this portal needs",
                                 step="connect") from None
        except OSError as exc:
            conn.close()
            raise describe_network_error(exc, host, port) from None
        if not authenticated:
            conn.close()
            raise ConnectorError(f"Authentication failed for user '{self.account}': check the user name, password and "
                                 "domain", step="authentication")
        return SmbSession(self, conn)

    def test(self):
        folder = self.join()
        with self.session() as session:
            found = session.contents(folder)
        place = f"folder {folder}" if folder else "the share's top folder"
        return (f"Connected to share {self.connection.database!r} on {self.connection.host}; "
                f"{found} in {place}.")
