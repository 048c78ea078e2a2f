"""SQLite files on the portal's server: demos and small jobs.

Only files under ETL_LOCAL_ROOTS may be opened (connections/local_paths.py), checked again at each use, and
a query may not ATTACH another file (nor VACUUM INTO one): either would reach past that check.
"""
import os
import sqlite3
import time
import urllib.parse

from connections import local_paths
from connections.protocols.base import (ConnectorError, Database, QueryResult, QuerySample, query_timeout_option,
                                        value_type)
from connections.protocols.registry import register

DEFAULT_QUERY_TIMEOUT = 90 * 60
STOPPED = "Query cancelled: it ran past the connection's query timeout or was stopped"
READ_ONLY = "SQLite file opened read-only (mode=ro, PRAGMA query_only)"
NO_OTHER_FILES = "a query may not open another database file (ATTACH, VACUUM INTO)"


def _authorize(action, *args):
    # ATTACH and VACUUM INTO both come as SQLITE_ATTACH; everything else is the query's own business.
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


def _error(exc):
    text = str(exc)
    if "interrupted" in text:
        return STOPPED
    if "not authorized" in text or "authorization denied" in text:
        return f"SQLite error: {NO_OTHER_FILES}"
    return f"SQLite error: {text}"


class SqliteResult(QueryResult):
    def __init__(self, connection, cursor):
        self._connection = connection
        self._cursor = cursor
        self.columns = [col[0] for col in cursor.description] if cursor.description else None
        self.rowcount = cursor.rowcount

    def batches(self, size=5000):
        try:
            while rows := self._cursor.fetchmany(size):
                yield rows
        except sqlite3.Error as exc:
            raise ConnectorError(_error(exc), step="query") from None

    def close(self):
        self._connection.close()


@register
class SqliteDatabase(Database):
    kind = "sqlite"
    uses_server_paths = True
    label = "SQLite"
    fields = ("path",)
    field_labels = {"path": "Database file"}
    local_path = "file"  # the form checks `path` against ETL_LOCAL_ROOTS too
    option_fields = {"query_timeout": query_timeout_option()}
    harmless_options = frozenset({"query_timeout"})

    def cancel(self):
        if self._active is not None:
            self._active.interrupt()  # documented as safe from another thread

    def execute(self, sql, params=None):
        path = self.connection.path
        resolved = local_paths.check(path, step="connect")
        if not os.path.isfile(resolved):
            raise ConnectorError(f"The SQLite file {path} does not exist", step="connect")
        # The resolved path: a symlink swapped after the check cannot redirect the open.
        if self.read_only:  # as the Test query opens it (see `sample`)
            uri = "file:" + urllib.parse.quote(str(resolved)) + "?mode=ro"
            connection = self._active = sqlite3.connect(uri, uri=True, timeout=self.timeout, check_same_thread=False)
            connection.execute("PRAGMA query_only = ON")
        else:
            connection = self._active = sqlite3.connect(resolved, timeout=self.timeout, check_same_thread=False)
        connection.set_authorizer(_authorize)
        deadline = time.monotonic() + float(self.connection.options.get("query_timeout") or DEFAULT_QUERY_TIMEOUT)
        # SQLite has no server-side timeout: abort from its progress callback once the deadline passes.
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = connection.execute(sql, params or ())
            if cursor.description is None:
                connection.commit()
            return SqliteResult(connection, cursor)
        except sqlite3.Error as exc:
            connection.close()
            raise ConnectorError(_error(exc), step="query") from None

    def sample(self, sql, params=None, limit=20):
        """Test query: the file opened read-only (`mode=ro`) with `PRAGMA query_only`, so no statement writes."""
        path = self.connection.path
        resolved = local_paths.check(path, step="connect")
        if not os.path.isfile(resolved):
            raise ConnectorError(f"The SQLite file {path} does not exist", step="connect")
        uri = "file:" + urllib.parse.quote(str(resolved)) + "?mode=ro"
        connection = self._active = sqlite3.connect(uri, uri=True, timeout=self.timeout, check_same_thread=False)
        try:
            connection.set_authorizer(_authorize)
            connection.execute("PRAGMA query_only = ON")
            deadline = time.monotonic() + float(self.connection.options.get("query_timeout") or DEFAULT_QUERY_TIMEOUT)
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            cursor = connection.execute(sql, params or ())
            if cursor.description is None:
                return QuerySample(None, [], False, READ_ONLY)
            rows = cursor.fetchmany(limit + 1)
            names = [column[0] for column in cursor.description]
            columns = [(name, value_type(row[i] for row in rows)) for i, name in enumerate(names)]
            return QuerySample(columns, rows[:limit], len(rows) > limit, READ_ONLY)
        except sqlite3.Error as exc:
            raise ConnectorError(_error(exc), step="query") from None
        finally:
            connection.rollback()
            connection.close()
