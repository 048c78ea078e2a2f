"""The one small interface every protocol implements and the declarations it makes (see Connector), and the
one error type they raise."""
import contextlib
import dataclasses
import enum
import fnmatch
import hashlib
import posixpath
import uuid
from pathlib import Path

from django import forms

# The file listing a script's packages, fetched with the script when it lies beside it.
REQUIREMENTS = "requirements.txt"


class ConnectorError(Exception):
    """A failure a user can read; `retryable` says whether trying again later may help."""

    def __init__(self, message, *, retryable=False, step=""):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.step = step

    def __str__(self):
        return self.message


class Capability(enum.StrEnum):
    """What a connection can be used for; a protocol declares one or several (SFTP: FILES and TEXT).

    The task form offers a connection only where its capability fits (a destination needs FILES), and the
    pipeline refuses any other. The value is a plain word, used in messages ("this needs database").
    """

    DATABASE = "database"  # runs queries: a `Database` with `execute()`
    FILES = "files"  # lists, reads and writes files: a `FileStore` with `session()`
    TEXT = "text"  # a query, script or command can be loaded from it: `fetch_text_files()`
    MAIL = "mail"  # sends email (`send()`, see smtp.py)
    SHELL = "shell"  # runs commands (see ssh.py)
    KEY = "key"  # encrypts files for someone (`encrypt_file()`, see gpg.py)

    @property
    def noun(self):
        """What a connection with it is, in a sentence: "a file store"."""
        return {"database": "a database", "files": "a file store", "text": "a place to load a query or script "
                "from", "mail": "a mail (SMTP) server", "shell": "a server to run commands on",
                "key": "a GPG key"}[self.value]


DATABASE, FILES, TEXT = Capability.DATABASE, Capability.FILES, Capability.TEXT
MAIL, SHELL, KEY = Capability.MAIL, Capability.SHELL, Capability.KEY

# Labels of the shared model columns; a protocol says what a column means for it in `field_labels`.
FIELD_LABELS = {"host": "Host", "port": "Port", "username": "User name", "database": "Database",
                "path": "Base folder"}
MODEL_FIELDS = tuple(FIELD_LABELS)


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret a protocol stores encrypted (Connection.secrets): its label, and whether it spans lines.

    A multi-line secret (a private key) gets a text area, is trimmed and ends with a newline; any other is
    taken exactly as typed (a password may begin or end with a space).
    """

    label: str
    multiline: bool = False


# Form fields several protocols declare alike; each call makes a new field, so a protocol may change its copy.
def verify_tls_option():
    return forms.BooleanField(label="Verify the server's TLS certificate", required=False, initial=True)


def query_timeout_option():
    return forms.IntegerField(label="Query timeout (seconds)", required=False, min_value=1,
                              help_text="Stop a query that runs longer; blank means no limit.")


def password_secret():
    return Secret("Password")


class Connector:
    """Base of every protocol: one subclass per connection kind, in its own module, registered with
    `registry.register`. Everything the portal needs to know about a kind is declared here, so forms, pages,
    the admin and the pipeline never compare a kind to a name.

    Subclasses set the class attributes and implement `test()`; those with a capability implement its
    methods (see `Capability`). An instance wraps one saved or unsaved `Connection`.
    """

    #: The value stored in `Connection.kind` (at most 20 characters); unique in the registry.
    kind = ""
    #: What users see for the kind: the kind list of the connection form, "Nightly (SFTP)".
    label = ""
    #: A frozenset of `Capability`: what tasks may use a connection of this kind for.
    capabilities = frozenset()
    #: The shared `Connection` columns this kind uses (of MODEL_FIELDS); the form ignores and clears the rest.
    fields = ()
    #: Labels of those columns for this kind where `FIELD_LABELS` is not right, e.g. {"path": "URL"}.
    field_labels = {}
    #: Keys of `Connection.options` this kind reads, each with its form field (label, widget, validation).
    #: A key several kinds use should mean the same to each: the form shows the chosen kind's own field.
    option_fields = {}
    #: Option keys that do not change where or how securely the connection connects (timeouts, a branch).
    #: Every other option, and every column in `fields`, says where the connection points: changing one
    #: drops the stored secrets (see `addressing`), so a new option protects them until declared harmless.
    harmless_options = frozenset()
    #: Names of `Connection.secrets` this kind stores, each with its `Secret` (label, multi-line or not).
    #: Secrets are write-only on every form and masked in every log line, email and page.
    secret_fields = {}
    #: The port used when none is set (None: the kind has no port); `port_for` may make it depend on options.
    default_port = None
    #: True for kinds that open paths on the portal's own server (SQLite, local folder): creating or changing
    #: such a connection needs the "may write code" permission (projects.access).
    uses_server_paths = False
    #: "file" or "folder" when `path` names one on this server: the form checks it against ETL_LOCAL_ROOTS.
    local_path = None
    #: With TEXT: what is fetched is kept as a cached copy, used when a later fetch fails (remote services
    #: such as GitLab or a web server, not file stores).
    caches_text = False

    def __init__(self, connection):
        self.connection = connection
        # (what, expiry date) of the credentials this connector saw while working: TLS certificates, keys.
        # A connection test records them (connections/expiry.py), so nobody has to type them in.
        self.seen_expiries = []

    def note_certificate(self, tls_socket, what):
        """Remember when the certificate a TLS socket was shown expires (read even when it is not verified)."""
        if tls_socket is None or not hasattr(tls_socket, "getpeercert"):
            return
        der = tls_socket.getpeercert(binary_form=True)
        if der:
            from cryptography import x509

            expires = x509.load_der_x509_certificate(der).not_valid_after_utc.date()
            self.seen_expiries.append((what, expires))

    @classmethod
    def has(cls, capability):
        """True when the kind has `capability`."""
        return capability in cls.capabilities

    @classmethod
    def field_label(cls, name):
        """The label of the model column `name` for this kind."""
        return cls.field_labels.get(name) or FIELD_LABELS[name]

    @classmethod
    def port_for(cls, options):
        """The port used when none is set, given the connection's options (SMTP: 465 with SSL)."""
        return cls.default_port

    @classmethod
    def addressing(cls):
        """(columns, option keys) that say where a connection of this kind points; see `harmless_options`."""
        return ("kind",) + tuple(cls.fields), tuple(key for key in cls.option_fields
                                                    if key not in cls.harmless_options)

    @classmethod
    def validate(cls, values):
        """Check the settings a form is about to save: {field name: message} for those refused.

        `values` holds the columns, options and secrets by name, the secrets as the save will store them
        (entered now, else kept). The base checks a server path against ETL_LOCAL_ROOTS (`local_path`); a
        protocol may add checks (GPG: the pasted key is a usable public key; SFTP and SSH: a certificate is for
        the private key). A message never quotes a secret.
        """
        errors = {}
        if cls.local_path:
            from connections import local_paths

            try:
                local_paths.check(values.get("path"), folder=cls.local_path == "folder")
            except ConnectorError as exc:
                errors["path"] = exc.message
        return errors

    @classmethod
    def settings_expiries(cls, options):
        """(what, date) of the credentials whose expiry the settings themselves tell, without connecting (an
        OpenSSH certificate's end date): noted when the connection form is saved, as a test would note them."""
        return []

    @classmethod
    def readable_option(cls, key, value):
        """The option `key` as the connection page shows it (an OpenSSH certificate: its key id and validity)."""
        return value

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

    def fetch_text_files(self, path, target_dir, *, what="text", folder=False, script=False):
        """TEXT: copy the file at `path` into the folder `target_dir`; return its name there.

        With `folder`, copy every file of the folder at `path` instead and return None (the caller picks the
        file to run). With `script`, also copy a `requirements.txt` found beside the file. `what` names the
        text in messages ("query", "script"). Raise ConnectorError when it cannot be had.
        """
        raise ConnectorError(f"A {what} cannot be loaded from a {self.label} connection", step="settings")


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


class FileSession:
    """An open session on a file store. `put` is safe: upload to a temporary name, then rename."""

    def list(self, folder="", pattern="*"):
        """Names (not paths) of the plain files in `folder` matching a shell wildcard."""
        return sorted(name for name in self.listdir(folder) if fnmatch.fnmatchcase(name, pattern))

    def listdir(self, folder):
        raise NotImplementedError

    def subfolders(self, folder):
        """Names of the folders in `folder`, or None where the protocol cannot tell them cheaply (then a
        connection test counts files alone)."""
        return None

    def contents(self, folder):
        """What a connection test says it found: `3 files and 2 folders` (files alone where folders are not
        told)."""
        files, folders = self.listdir(folder), self.subfolders(folder)
        return _count(len(files), "file") + ("" if folders is None else " and " + _count(len(folders), "folder"))

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

    def size_of(self, remote_path):
        """The size in bytes the server reports for `remote_path` now, or None when the protocol cannot say (an
        FTP server without SIZE, a kind that does not implement it). Read after a delivery as proof of what
        landed."""
        return None

    def digest_of(self, remote_path):
        """(algorithm, hex digest) the server computes itself for `remote_path`, or None when it offers none.

        Never a download: a check that reads the whole file back over the network would double every
        delivery's cost. Only some servers can (FTP's HASH / XSHA256 / XMD5 extensions, a local folder)."""
        return None

    def put(self, local_path, remote_path, overwrite=True, transfer_key=None):
        """Upload `local_path` so that `remote_path` only ever holds a complete file.

        The upload goes to a temporary ".name.XXXXXXXX.part" first. With a `transfer_key` (the caller's name
        for "this file to this place", the same on every retry) the temporary name is derived from it, so a
        retry writes over what an upload cut off by a dead server left behind, instead of leaving it there
        for ever; without one it is random."""
        if not overwrite and self.exists(remote_path):
            raise ConnectorError(f"{remote_path} already exists and overwriting is off", step="upload")
        folder, name = posixpath.split(remote_path)
        tag = (hashlib.sha256(f"{transfer_key}|{remote_path}".encode()).hexdigest() if transfer_key
               else uuid.uuid4().hex)[:8]
        temporary = posixpath.join(folder, f".{name}.{tag}.part")
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
    """A place files are listed, read and written; every file store can also hold a query or script."""

    capabilities = frozenset({FILES, TEXT})

    def session(self):
        """Open a FileSession; use it as a context manager."""
        raise NotImplementedError

    def join(self, *parts):
        """A path under the connection's base folder ("" is the login folder)."""
        cleaned = [part.strip("/") for part in parts if part and part.strip("/")]
        base = self.connection.path or ""
        return posixpath.join(base, *cleaned) if (base or cleaned) else ""

    def test(self):
        # Folders counted too: a vendor's folder often holds only folders, and "0 files" alone read as empty.
        with self.session() as session:
            found = session.contents(self.join())
        return f"Connected; {found} in {self.join() or 'the home folder'}."

    def fetch_text_files(self, path, target_dir, *, what="text", folder=False, script=False):
        path = (path or "").strip()
        if not path:
            raise ConnectorError(f"Set the path of the {what} on {self.connection.name}", step="settings")
        target_dir = Path(target_dir)
        with self.session() as session:
            if folder:
                folder_path = self.join(path)
                names = session.list(folder_path)
                if not names:
                    raise ConnectorError(f"The folder {folder_path or '/'} on {self.connection.name} holds no "
                                         "files", step="fetch")
                for name in names:
                    session.get(posixpath.join(folder_path, name), str(target_dir / name))
                return None
            remote = self.join(path)
            name = posixpath.basename(remote)
            session.get(remote, str(target_dir / name))
            beside = posixpath.join(posixpath.dirname(remote), REQUIREMENTS)
            if script and name != REQUIREMENTS and session.exists(beside):
                session.get(beside, str(target_dir / REQUIREMENTS))
            return name


class Database(Connector):
    capabilities = frozenset({DATABASE})
    #: The placeholder style its `execute` takes: "qmark" (?) or "format" (%s).
    paramstyle = "qmark"
    #: True when `GO` separator lines and `USE db` statements are removed from a query before it runs (ODBC:
    #: the connection names its database, and the driver takes one batch).
    removes_tool_statements = False
    #: Set for a dry run (runs/dry_run.py): every session this connector opens is read-only where the engine
    #: can promise it (a guard against a query that writes by accident, not against one that lifts it itself);
    #: engines that cannot promise it refuse to connect.
    read_only = False
    # The connection a query is running on, so another thread can cancel it (see `cancel`).
    _active = None

    def cancel(self):
        """Stop the statement running on this connector, from another thread. Engines override it."""

    def execute(self, sql, params=None):
        """Run `sql`; return a QueryResult context manager with `columns` and `batches()`."""
        raise NotImplementedError

    def sample(self, sql, params=None, limit=20):
        """A QuerySample of the first `limit` rows of `sql`, run read-only where the engine allows it and rolled
        back in any case (the task form's Test query). An engine that cannot promise read-only refuses."""
        raise ConnectorError(f"Test query is not available for {self.label} connections", step="settings")

    def test(self):
        with self.execute("SELECT 1") as result:
            rows = [row for batch in result.batches() for row in batch]
        if rows and rows[0][0] == 1:
            return "Connected; SELECT 1 returned 1."
        raise ConnectorError("Connected, but SELECT 1 did not return 1", step="query")


@dataclasses.dataclass
class QuerySample:
    """What Test query shows: `columns` as (name, type name) pairs (None: no result set), up to `limit` rows,
    whether there were `more`, and how the engine kept the statement from writing (`read_only`)."""

    columns: list
    rows: list
    more: bool
    read_only: str


def value_type(values):
    """A column's type named from its values, for engines whose cursor does not say (SQLite, ODBC)."""
    for value in values:
        if value is not None:
            return {"int": "integer", "float": "real", "str": "text", "bytes": "blob", "Decimal": "decimal",
                    "bool": "boolean"}.get(type(value).__name__, type(value).__name__)
    return "null"


class QueryResult:
    """Rows of one statement. `columns` is None when the statement returned no result set."""

    columns = None
    # The columns' source type names, for the run's record and drift (runs/drift.py); None where the driver does
    # not declare them (SQLite).
    type_names = None
    rowcount = -1

    def batches(self, size=5000):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
