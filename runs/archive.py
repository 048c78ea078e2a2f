"""The archive of output files: where a run's delivered files are kept for download, resend and e-mail, so that
any web node serves a file any worker host made.

A RunFile's `stored_path` is an archive *key*: with a shared archive, a path relative to its root
("runs/<task>/<run>/<name>"); with the local data folder (and in records made before the archive), the absolute
path of the file inside ETL_DATA_DIR.

Backends:
- the local data folder (default, as before): the worker's run folder is the archive; nothing is copied.
- a shared folder, ETL_ARCHIVE_DIR (NFS, SMB mount, ...) that every node mounts: the delivered file is copied
  there after delivery (to a temporary name, then renamed, so a reader never sees half a file).
Not done yet: a folder on a file-store connection of the portal's own (ETL_ARCHIVE_CONNECTION).
"""
import logging
import os
import shutil
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


def root():
    shared = getattr(settings, "ETL_ARCHIVE_DIR", "") or ""
    return Path(shared or settings.ETL_DATA_DIR).resolve()


def is_shared():
    return bool(getattr(settings, "ETL_ARCHIVE_DIR", ""))


def path_of(key):
    """The file a key names, or None when a relative key would lie outside the archive. An absolute key (the
    local default, and records made before the archive) is the path the portal itself recorded, read as before;
    deleting one stays confined to ETL_DATA_DIR (`delete`)."""
    if not key:
        return None
    candidate = Path(key)
    if candidate.is_absolute():
        return candidate
    path = (root() / candidate).resolve()
    return path if path.is_relative_to(root()) else None


def store(local_path):
    """Keep a delivered file (inside ETL_DATA_DIR) in the archive; returns its key."""
    local_path = Path(local_path).resolve()
    if not is_shared():
        return str(local_path)  # the node's own data folder, as before: an absolute key
    key = local_path.relative_to(Path(settings.ETL_DATA_DIR).resolve()).as_posix()
    target = root() / key
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(local_path, partial)
    os.replace(partial, target)
    return key


def exists(key):
    path = path_of(key)
    return path is not None and path.is_file()


def open_file(key):
    """The stored file, opened for reading (FileNotFoundError when it is gone)."""
    path = path_of(key)
    if path is None:
        raise FileNotFoundError(key)
    return open(path, "rb")


def local_copy(key):
    """A path to read the file from on this node (the archive is a folder: the file itself)."""
    path = path_of(key)
    if path is None:
        raise FileNotFoundError(key)
    return path


def delete(key):
    """Remove a stored file and the run folders it leaves empty; never outside the archive, nor (for an
    absolute key) outside ETL_DATA_DIR, whatever a record says."""
    path = path_of(key)
    if path is None:
        return False
    if Path(key).is_absolute():
        path = path.resolve()
        if not path.is_relative_to(Path(settings.ETL_DATA_DIR).resolve()):
            logger.warning("Not deleting %s: it is outside ETL_DATA_DIR", path)
            return False
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    base = root() if not Path(key).is_absolute() else Path(settings.ETL_DATA_DIR).resolve()
    runs_root = base / "runs"
    folder = path.parent
    while folder != runs_root and folder.is_relative_to(runs_root):
        try:
            os.rmdir(folder)  # only succeeds when empty: the run's folder goes with its last file
        except OSError:
            break
        folder = folder.parent
    return True
