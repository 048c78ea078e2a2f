"""SFTP through paramiko, with the host key pinned and timeouts on every operation.

Uploads and downloads go through sftp_transfer's pipelined requests (close to OpenSSH's own speed, in
constant memory) over a transport that prefers AES-GCM, the cipher paramiko spends least CPU on per byte.
"""
import contextlib
import errno
import os
import posixpath
import re
import stat

import paramiko

from connections.protocols import sftp_transfer
from connections.protocols.base import ConnectorError, FileSession, FileStore
from connections.protocols.registry import register
from connections.protocols.ssh_transport import OpenSshLogin, open_transport

BULK_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# Room for all the reads a download keeps in flight, so the server never waits for the window to reopen,
# and packets big enough to carry a whole read reply: paramiko's cost is per packet more than per byte.
RECEIVE_WINDOW = 8 * 1024 * 1024
RECEIVE_PACKET = 128 * 1024
TEMPORARY_NAME = re.compile(r"\.(.+)\.[0-9a-f]{8}\.part")


def _io_error(exc, path, step):
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return ConnectorError(f"Permission denied on {path}", step="permission")
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return ConnectorError(f"{path} does not exist", step=step)
    if isinstance(exc, TimeoutError):
        return ConnectorError(f"The server stopped answering during the {step} of {path}", retryable=True,
                              step="timeout")
    if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
        return ConnectorError(f"SFTP {step} of {path} failed: {_reason(exc)}", retryable=True, step=step)
    return ConnectorError(f"SFTP error on {path}: {exc}", step=step)


def _reason(exc):
    """Why a transfer failed, in words even when the exception carries none (a closed connection raises a bare
    EOFError or an OSError("Socket is closed"))."""
    text = str(exc).strip()
    if isinstance(exc, EOFError) or text.lower() in ("", "socket is closed", "server connection dropped:"):
        return f"the server closed the connection ({type(exc).__name__}{': ' + text if text else ''})"
    return text


def _final_path(path):
    """The name put() is uploading to, rather than its temporary ".name.1a2b3c4d.part" stand-in."""
    folder, name = posixpath.split(path)
    match = TEMPORARY_NAME.fullmatch(name)
    return posixpath.join(folder, match.group(1)) if match else path


class SftpSession(FileSession):
    def __init__(self, transport, timeout):
        self.transport = transport
        channel = transport.open_session(window_size=RECEIVE_WINDOW, max_packet_size=RECEIVE_PACKET, timeout=timeout)
        # Without a channel timeout a dropped connection mid-transfer would hang forever.
        channel.settimeout(timeout)
        channel.invoke_subsystem("sftp")
        self.sftp = paramiko.SFTPClient(channel)
        self._pipe = None

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = sftp_transfer.SftpPipe(self.sftp)
        return self._pipe

    def listdir(self, folder):
        try:
            return [entry.filename for entry in self.sftp.listdir_attr(folder or ".") if stat.S_ISREG(entry.st_mode)]
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, folder or ".", "folder") from None

    def subfolders(self, folder):
        try:
            return [entry.filename for entry in self.sftp.listdir_attr(folder or ".") if stat.S_ISDIR(entry.st_mode)]
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, folder or ".", "folder") from None

    def get(self, remote_path, local_path):
        try:
            expected = self.sftp.stat(remote_path).st_size
            received = sftp_transfer.download(self.pipe, remote_path, local_path, expected)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "download") from None
        if received != expected or os.path.getsize(local_path) != expected:
            raise ConnectorError(f"{remote_path}: expected {expected} bytes, received {received}", retryable=True,
                                 step="download")
        return local_path

    def upload(self, local_path, remote_path):
        try:
            sent = sftp_transfer.upload(self.pipe, local_path, remote_path)
            stored = self.sftp.stat(remote_path).st_size
        except PermissionError:
            # The path is put()'s temporary name; the folder is what the user can act on.
            folder = posixpath.dirname(remote_path) or "the login folder"
            raise ConnectorError(f"Permission denied: this login may not create files in {folder}",
                                 step="permission") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, _final_path(remote_path), "upload") from None
        if stored != sent:
            raise ConnectorError(f"{_final_path(remote_path)}: sent {sent} bytes, but the server stored {stored}",
                                 retryable=True, step="upload")

    def rename(self, old_path, new_path, overwrite=False):
        try:
            if overwrite:
                self.sftp.posix_rename(old_path, new_path)
            else:
                self.sftp.rename(old_path, new_path)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            # Plain SFTP rename refuses an existing target with a bare "Failure": say what happened.
            if not overwrite and not isinstance(exc, PermissionError) and self.exists(new_path):
                raise ConnectorError(f"{new_path} already exists and overwriting is off", step="rename") from None
            raise _io_error(exc, new_path, "rename") from None

    def delete(self, remote_path):
        try:
            self.sftp.remove(remote_path)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "delete") from None

    def size_of(self, remote_path):
        try:
            return self.sftp.stat(remote_path).st_size
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "verify") from None

    def exists(self, remote_path):
        try:
            self.sftp.stat(remote_path)
            return True
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise _io_error(exc, remote_path, "folder") from None

    def close(self):
        # Every transfer was checked when it ended, so a connection that dies while closing loses nothing.
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
            self.sftp.close()
        self.transport.close()


@register
class SftpStore(OpenSshLogin, FileStore):
    kind = "sftp"
    label = "SFTP"
    fields = ("host", "port", "username", "path")
    default_port = 22

    def session(self):
        transport = open_transport(self, preferred_ciphers=BULK_CIPHERS)
        try:
            return SftpSession(transport, self.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise ConnectorError(self.scrub(f"The server refused the SFTP subsystem: {exc}"), step="connect") from None
