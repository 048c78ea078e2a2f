"""Which paths on the portal's own server a connection may open (SQLite files, local folders).

Only paths under the folders of `settings.ETL_LOCAL_ROOTS` are allowed, and never the portal's own files,
whatever that setting says: the data folder (its database, keys, run folders, caches, script environments),
the database file(s) of the app, and anything that looks like a key. Both the connection form and the
protocol modules call `check`, so a connection saved through the admin, or before the setting changed,
still cannot reach past the roots at run time.

Paths are compared after resolving symlinks and `..`, component by component (`/srv/demo-old` is not
under `/srv/demo`).
"""
import os
from pathlib import Path

from django.conf import settings

from connections.protocols.base import ConnectorError

# A file with one of these suffixes, or anything inside one of these folders, is taken for a key.
KEY_SUFFIXES = (".key", ".pem", ".p12", ".pfx")
KEY_FOLDERS = {".ssh", ".gnupg"}
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def real(path):
    """The path with symlinks and `..` resolved, whether or not it exists yet."""
    return Path(os.path.realpath(str(path)))


def roots():
    return [real(root) for root in settings.ETL_LOCAL_ROOTS]


def _app_database_files():
    """The app's own SQLite files: as configured, and as opened now (a test run swaps in another file)."""
    from django.db import connections

    names = [database.get("NAME") for database in settings.DATABASES.values()
             if str(database.get("ENGINE", "")).endswith("sqlite3")]
    for alias in connections:
        database = connections[alias].settings_dict
        if str(database.get("ENGINE", "")).endswith("sqlite3"):
            names.append(database.get("NAME"))
    files = set()
    for name in names:
        name = str(name or "")
        if name and name != ":memory:" and not name.startswith("file:"):
            base = real(name)
            files.update(base.with_name(base.name + suffix) for suffix in SQLITE_SIDE_FILES)
    return files


def _within(path, folder):
    return path == folder or folder in path.parents


def refusal(path, *, folder=False):
    """Why `path` (already resolved) may not be used, or "" when it may. A `folder` must also not hold
    the portal's own files, since everything under it becomes reachable."""
    data_dir = real(settings.ETL_DATA_DIR)
    if _within(path, data_dir) or (folder and _within(data_dir, path)):
        return "This path leads into the portal's own data folder (its database, keys and run files)"
    for database in _app_database_files():
        if path == database or (folder and _within(database, path)):
            return "This path leads to the portal's own database"
    if path.name.lower().endswith(KEY_SUFFIXES) or KEY_FOLDERS & set(path.parts):
        return "This path leads to a key file"
    allowed = roots()
    if not any(_within(path, root) for root in allowed):
        if not allowed:
            return "No folder on this server may be used: ETL_LOCAL_ROOTS is empty"
        return f"Folders on this server are limited to {', '.join(map(str, allowed))} (ETL_LOCAL_ROOTS)"
    return ""


def check(path, *, folder=False, step="path"):
    """The resolved path when a connection may use it; else ConnectorError with the reason."""
    text = str(path or "").strip()
    if not text or not os.path.isabs(text):
        raise ConnectorError("Give an absolute path on this server (it begins with /)", step=step)
    resolved = real(text)
    reason = refusal(resolved, folder=folder)
    if reason:
        raise ConnectorError(reason, step=step)
    return resolved
