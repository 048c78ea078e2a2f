"""A folder on the portal's own server (demos, network mounts). No path may leave the folder.

The folder itself must lie under ETL_LOCAL_ROOTS and hold none of the portal's own files
(connections/local_paths.py); every path used in a session is checked again after resolving symlinks and
`..`, so a folder name, file pattern or symlink cannot climb out of it.
"""
import hashlib
import os
import shutil

from connections import local_paths
from connections.protocols.base import ConnectorError, FileSession, FileStore
from connections.protocols.registry import register


class LocalSession(FileSession):
    def __init__(self, base):
        self.base = local_paths.check(base, folder=True, step="folder")

    def resolve(self, path):
        full = local_paths.real(self.base / str(path).lstrip("/"))
        if full != self.base and not full.is_relative_to(self.base):
            raise ConnectorError(f"The path {path!r} leaves the connection's folder", step="path")
        reason = local_paths.refusal(full)
        if reason:
            raise ConnectorError(f"{reason}: {path!r}", step="path")
        return full

    def listdir(self, folder):
        target = self.resolve(folder)
        try:
            return [entry.name for entry in os.scandir(target) if entry.is_file()]
        except FileNotFoundError:
            raise ConnectorError(f"Folder {folder or '/'} does not exist", step="folder") from None
        except PermissionError:
            raise ConnectorError(f"Permission denied on folder {folder or '/'}", step="permission") from None

    def subfolders(self, folder):
        try:
            return [entry.name for entry in os.scandir(self.resolve(folder)) if entry.is_dir()]
        except OSError:
            return None  # listdir, asked first, has already said why

    def get(self, remote_path, local_path):
        source = self.resolve(remote_path)
        try:
            shutil.copyfile(source, local_path)
        except FileNotFoundError:
            raise ConnectorError(f"{remote_path} does not exist", step="download") from None
        if os.path.getsize(local_path) != source.stat().st_size:
            raise ConnectorError(f"{remote_path} changed size while it was copied", retryable=True, step="download")
        return local_path

    def upload(self, local_path, remote_path):
        target = self.resolve(remote_path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_path, target)
        except PermissionError:
            raise ConnectorError(f"Permission denied writing {remote_path}", step="permission") from None

    def rename(self, old_path, new_path, overwrite=False):
        source, target = self.resolve(old_path), self.resolve(new_path)
        if not overwrite and target.exists():
            raise ConnectorError(f"{new_path} already exists and overwriting is off", step="rename")
        os.replace(source, target)

    def delete(self, remote_path):
        try:
            self.resolve(remote_path).unlink()
        except FileNotFoundError:
            raise ConnectorError(f"{remote_path} does not exist", step="delete") from None

    def exists(self, remote_path):
        return self.resolve(remote_path).exists()

    def size_of(self, remote_path):
        try:
            return self.resolve(remote_path).stat().st_size
        except FileNotFoundError:
            raise ConnectorError(f"{remote_path} does not exist", step="verify") from None

    def digest_of(self, remote_path):
        # The folder is on this machine: reading it back costs no network transfer.
        digest = hashlib.sha256()
        with open(self.resolve(remote_path), "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return "sha256", digest.hexdigest()


@register
class LocalFolder(FileStore):
    kind = "local"
    uses_server_paths = True
    label = "Local folder"
    fields = ("path",)
    field_labels = {"path": "Folder"}
    local_path = "folder"  # the form checks `path` against ETL_LOCAL_ROOTS too

    def session(self):
        base = self.connection.path
        if not base or not os.path.isabs(base):
            raise ConnectorError("A local folder connection needs an absolute folder path", step="settings")
        local_paths.check(base, folder=True, step="folder")
        if not os.path.isdir(base):
            raise ConnectorError(f"The folder {base} does not exist on this server", step="folder")
        return LocalSession(base)

    def join(self, *parts):
        # Paths are relative to the folder itself; the session enforces the boundary.
        return "/".join(part.strip("/") for part in parts if part and part.strip("/"))
