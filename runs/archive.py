"""The archive of output files: where a run's delivered files are kept for download, resend and e-mail, so that
any web node serves a file any worker host made.

A RunFile's `stored_path` is an archive *key*: with a shared archive, a path relative to its root
("runs/<task>/<run>/<name>"); with the local data folder (and in records made before the archive), the absolute
path of the file inside ETL_DATA_DIR.

Backends:
- the local data folder (default, as before): the worker's run folder is the archive; nothing is copied.
- a shared folder, ETL_ARCHIVE_DIR (NFS, SMB mount, ...) that every node mounts: the delivered file is copied
  there after delivery (to a temporary name, then renamed, so a reader never sees half a file).
- a file-store connection of the portal's own (ETL_ARCHIVE_CONNECTION: its id or name; SFTP, SMB, FTP, a
  folder), when the hosts share no folder: the file is uploaded to the connection's folder as
  "<run id>-<name>" (no sub-folders: not every file store creates them), through the store's safe `put`
  (temporary name, then renamed). Its key is "connection:<id>:<remote path>", so a file stays readable where
  it went when the setting changes later. Reading downloads it (`open_file`, `local_copy`); `exists` trusts the
  record rather than asking the server for every row of a page: a file gone from the server fails its download
  with the server's reason.
A file that cannot be archived (the server is down) keeps its key in the worker's data folder, with a warning in
the run's log: the run has delivered, so it is not failed for that (a retry would deliver twice).
"""
import hashlib
import logging
import os
import posixpath
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from connections.models import Connection
from connections.protocols import FILES, ConnectorError

logger = logging.getLogger(__name__)
CONNECTION_KEY = "connection:"


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


def store(local_path, warn=None):
    """Keep a delivered file (inside ETL_DATA_DIR) in the archive; returns its key. `warn(message)` hears why a
    file stayed in this node's data folder only."""
    local_path = Path(local_path).resolve()
    try:
        if getattr(settings, "ETL_ARCHIVE_CONNECTION", ""):
            return _store_on_connection(local_path)
        if not is_shared():
            return str(local_path)  # the node's own data folder, as before: an absolute key
        key = local_path.relative_to(Path(settings.ETL_DATA_DIR).resolve()).as_posix()
        target = root() / key
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(local_path, partial)
        os.replace(partial, target)
        return key
    except (ConnectorError, OSError) as exc:
        reason = exc.message if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc.strerror or exc}"
        if warn is not None:
            warn(f"{local_path.name} could not be archived ({reason}); it is kept on this worker host only")
        logger.warning("Could not archive %s: %s", local_path, reason)
        return str(local_path)


# --- on a file-store connection -------------------------------------------------------------------------------

def archive_connection():
    """The connection ETL_ARCHIVE_CONNECTION names (an id or a unique name), refused unless it holds files."""
    wanted = str(settings.ETL_ARCHIVE_CONNECTION)
    found = list(Connection.objects.filter(**{"pk": int(wanted)} if wanted.isdigit() else {"name": wanted})[:2])
    if len(found) != 1:
        raise ConnectorError(f"ETL_ARCHIVE_CONNECTION ({wanted}) names {'no' if not found else 'more than one'} "
                             f"connection", step="archive")
    return found[0]


def _store(connection):
    store = connection.connector()
    if FILES not in store.capabilities:
        raise ConnectorError(f"{connection.name} is a {connection.kind_label} connection and cannot hold files",
                             step="archive")
    return store


def _store_on_connection(local_path):
    connection = archive_connection()
    store = _store(connection)
    run_id = local_path.parent.name  # run folders are ETL_DATA_DIR/runs/<task>/<run>/
    remote = store.join(f"{run_id}-{local_path.name}")
    with store.session() as session:
        session.put(str(local_path), remote, transfer_key=f"archive:{run_id}")
    return f"{CONNECTION_KEY}{connection.pk}:{remote}"


def _on_connection(key):
    """(store, remote path) of a connection key; None for other keys."""
    if not key or not key.startswith(CONNECTION_KEY):
        return None
    pk, _, remote = key[len(CONNECTION_KEY):].partition(":")
    connection = Connection.objects.filter(pk=int(pk)).first() if pk.isdigit() else None
    if connection is None:
        raise FileNotFoundError(f"the archive connection of {posixpath.basename(remote)} was deleted")
    return _store(connection), remote


def _download(key, target):
    store, remote = _on_connection(key)
    with store.session() as session:
        session.get(remote, str(target))
    return target


def exists(key):
    if key and key.startswith(CONNECTION_KEY):
        return True  # trusted: see the module's docstring
    path = path_of(key)
    return path is not None and path.is_file()


def _scratch():
    folder = Path(settings.ETL_DATA_DIR) / "archive-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _cached(key):
    return _scratch() / hashlib.sha256(key.encode()).hexdigest()[:32]


def open_file(key):
    """The stored file, opened for reading (FileNotFoundError when it is gone; ConnectorError when the archive
    connection cannot give it)."""
    if key and key.startswith(CONNECTION_KEY):
        target = _download(key, _scratch() / f"{uuid.uuid4().hex}.download")
        handle = open(target, "rb")
        target.unlink()  # the open handle keeps the data; nothing is left behind once it is closed
        return handle
    path = path_of(key)
    if path is None:
        raise FileNotFoundError(key)
    return open(path, "rb")


def local_copy(key):
    """A path to read the file from on this node: the file itself in a folder archive, else a downloaded copy
    (in ETL_DATA_DIR/archive-cache, one per key, replaced on each call and removed with the file)."""
    if key and key.startswith(CONNECTION_KEY):
        return _download(key, _cached(key))
    path = path_of(key)
    if path is None:
        raise FileNotFoundError(key)
    return path


def delete(key):
    """Remove a stored file and the run folders it leaves empty; never outside the archive, nor (for an
    absolute key) outside ETL_DATA_DIR, whatever a record says."""
    if key and key.startswith(CONNECTION_KEY):
        try:
            store, remote = _on_connection(key)
        except FileNotFoundError:  # its connection was deleted: nothing the portal can reach is left
            return False
        with store.session() as session:
            if session.exists(remote):
                session.delete(remote)
        _cached(key).unlink(missing_ok=True)
        return True
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
