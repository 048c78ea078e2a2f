"""SFTP through paramiko, with the host key pinned and timeouts on every operation."""
import errno
import os
import stat

import paramiko

from connections.protocols.base import ConnectorError, FileSession, FileStore
from connections.protocols.registry import register
from connections.protocols.ssh_transport import open_transport


def _io_error(exc, path, step):
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return ConnectorError(f"Permission denied on {path}", step="permission")
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return ConnectorError(f"{path} does not exist", step=step)
    if isinstance(exc, (TimeoutError, EOFError, paramiko.SSHException, OSError)):
        return ConnectorError(f"SFTP transfer of {path} failed: {exc or type(exc).__name__}", retryable=True,
                              step=step)
    return ConnectorError(f"SFTP error on {path}: {exc}", step=step)


class SftpSession(FileSession):
    def __init__(self, transport, timeout):
        self.transport = transport
        self.sftp = paramiko.SFTPClient.from_transport(transport)
        # Without a channel timeout a dropped connection mid-transfer would hang forever.
        self.sftp.get_channel().settimeout(timeout)

    def listdir(self, folder):
        try:
            return [entry.filename for entry in self.sftp.listdir_attr(folder or ".") if stat.S_ISREG(entry.st_mode)]
        except (OSError, paramiko.SSHException) as exc:
            raise _io_error(exc, folder or ".", "folder") from None

    def get(self, remote_path, local_path):
        try:
            expected = self.sftp.stat(remote_path).st_size
            self.sftp.get(remote_path, local_path, prefetch=True)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "download") from None
        if os.path.getsize(local_path) != expected:
            raise ConnectorError(f"{remote_path}: expected {expected} bytes, received {os.path.getsize(local_path)}",
                                 retryable=True, step="download")
        return local_path

    def upload(self, local_path, remote_path):
        try:
            self.sftp.put(local_path, remote_path, confirm=True)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "upload") from None

    def rename(self, old_path, new_path, overwrite=False):
        try:
            if overwrite:
                self.sftp.posix_rename(old_path, new_path)
            else:
                self.sftp.rename(old_path, new_path)
        except (OSError, paramiko.SSHException) as exc:
            raise _io_error(exc, new_path, "rename") from None

    def delete(self, remote_path):
        try:
            self.sftp.remove(remote_path)
        except (OSError, paramiko.SSHException) as exc:
            raise _io_error(exc, remote_path, "delete") from None

    def exists(self, remote_path):
        try:
            self.sftp.stat(remote_path)
            return True
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException) as exc:
            raise _io_error(exc, remote_path, "stat") from None

    def close(self):
        self.sftp.close()
        self.transport.close()


@register
class SftpStore(FileStore):
    kind = "sftp"
    label = "SFTP"
    fields = ("host", "port", "username", "path")
    secret_fields = ("password", "private_key", "passphrase")
    default_port = 22

    def session(self):
        transport = open_transport(self)
        try:
            return SftpSession(transport, self.timeout)
        except (paramiko.SSHException, OSError) as exc:
            transport.close()
            raise ConnectorError(f"The server refused the SFTP subsystem: {exc}", step="connect") from None

