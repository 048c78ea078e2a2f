"""SQLite files on the portal's server: demos and small jobs."""
import os
import sqlite3
import time

from connections.protocols.base import ConnectorError, Database, QueryResult
from connections.protocols.registry import register

DEFAULT_QUERY_TIMEOUT = 90 * 60
STOPPED = "Query cancelled: it ran past the connection's query timeout or was stopped"


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
            raise ConnectorError(STOPPED if "interrupted" in str(exc) else f"SQLite error: {exc}",
                                 step="query") from None

    def close(self):
        self._connection.close()


@register
class SqliteDatabase(Database):
    kind = "sqlite"
    uses_server_paths = True
    label = "SQLite"
    fields = ("path",)
    option_fields = ("query_timeout",)

    def cancel(self):
        if self._active is not None:
            self._active.interrupt()  # documented as safe from another thread

    def execute(self, sql, params=None):
        path = self.connection.path
        if not path or not os.path.isfile(path):
            raise ConnectorError(f"The SQLite file {path or '(none)'} does not exist", step="connect")
        connection = self._active = sqlite3.connect(path, timeout=self.timeout, check_same_thread=False)
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
            message = STOPPED if "interrupted" in str(exc) else f"SQLite error: {exc}"
            raise ConnectorError(message, step="query") from None
