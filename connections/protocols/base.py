"""The one small interface every protocol implements, and the one error type they raise."""
import contextlib
import fnmatch
import posixpath
import uuid


class ConnectorError(Exception):
    """A failure a user can read; `retryable` says whether trying again later may help."""

    def __init__(self, message, *, retryable=False, step=""):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.step = step

    def __str__(self):
        return self.message


class Connector:
    """Base of every protocol. Subclasses set the class attributes and implement `test()`."""

    kind = ""
    label = ""
    category = ""  # "database", "files", "shell", "key", "text", "mail"
    # Model fields the form shows for this kind, secret names it stores, and keys of `options` it reads.
    fields = ()
    secret_fields = ()
    option_fields = ()
    default_port = None
    # True for kinds that open paths on the portal's own server (SQLite, local folder): creating or changing
    # such a connection needs the "may write code" permission (projects.access).
    uses_server_paths = False

    def __init__(self, connection):
        self.connection = connection

    @property
    def timeout(self):
        from django.conf import settings

        return float(self.connection.options.get("timeout") or settings.ETL_CONNECT_TIMEOUT)

    def secret(self, name):
        return self.connection.secret(name)

    def scrub(self, text):
        from connections.secrets import scrub

        return scrub(text, self.connection.secret_values())

    def test(self):
        """Connect and do one harmless operation; return a success message or raise ConnectorError."""
        raise NotImplementedError


class FileSession:
    """An open session on a file store. `put` is safe: upload to a temporary name, then rename."""

    def list(self, folder="", pattern="*"):
        """Names (not paths) of the plain files in `folder` matching a shell wildcard."""
        return sorted(name for name in self.listdir(folder) if fnmatch.fnmatchcase(name, pattern))

    def listdir(self, folder):
        raise NotImplementedError

    def get(self, remote_path, local_path):
        """Download to `local_path`, verifying the size the server reported."""
        raise NotImplementedError

    def upload(self, local_path, remote_path):
        raise NotImplementedError

    def rename(self, old_path, new_path, overwrite=False):
        raise NotImplementedError

    def delete(self, remote_path):
        raise NotImplementedError

    def exists(self, remote_path):
        raise NotImplementedError

    def put(self, local_path, remote_path, overwrite=True):
        """Upload `local_path` so that `remote_path` only ever holds a complete file."""
        if not overwrite and self.exists(remote_path):
            raise ConnectorError(f"{remote_path} already exists and overwriting is off", step="upload")
        folder, name = posixpath.split(remote_path)
        temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
        try:
            self.upload(local_path, temporary)
            self.rename(temporary, remote_path, overwrite=overwrite)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.delete(temporary)
            if isinstance(exc, ConnectorError) and temporary in exc.message:
                # The temporary name means nothing to the user (a missing folder read "….part does not exist").
                exc.message = exc.message.replace(temporary, remote_path)
                exc.args = (exc.message,)
            raise
        return remote_path

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
            # Closing a connection that has just failed often fails too; the first error is the one to report.


class FileStore(Connector):
    category = "files"

    def session(self):
        """Open a FileSession; use it as a context manager."""
        raise NotImplementedError

    def join(self, *parts):
        """A path under the connection's base folder ("" is the login folder)."""
        cleaned = [part.strip("/") for part in parts if part and part.strip("/")]
        base = self.connection.path or ""
        return posixpath.join(base, *cleaned) if (base or cleaned) else ""

    def test(self):
        with self.session() as session:
            names = session.listdir(self.join())
        return f"Connected; {len(names)} entries in {self.join() or 'the home folder'}."


class Database(Connector):
    category = "database"
    # The connection a query is running on, so another thread can cancel it (see `cancel`).
    _active = None

    def cancel(self):
        """Stop the statement running on this connector, from another thread. Engines override it."""

    def execute(self, sql, params=None):
        """Run `sql`; return a QueryResult context manager with `columns` and `batches()`."""
        raise NotImplementedError

    def test(self):
        with self.execute("SELECT 1") as result:
            rows = [row for batch in result.batches() for row in batch]
        if rows and rows[0][0] == 1:
            return "Connected; SELECT 1 returned 1."
        raise ConnectorError("Connected, but SELECT 1 did not return 1", step="query")


class QueryResult:
    """Rows of one statement. `columns` is None when the statement returned no result set."""

    columns = None
    rowcount = -1

    def batches(self, size=5000):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
