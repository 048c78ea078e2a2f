"""Where a task's query, script or command comes from: typed in, or fetched at run time from a connection.

File stores (SFTP, FTP, SMB, local folder) are read with `session.get`; GitLab and web connections with
their fetchers. A path on GitLab may name a ref after `@` (`queries/daily.sql@release`); otherwise the
connection's ref is used. A script may be a whole folder (a package): `entry` then names the file to run.

With the task's "cache" option, what was fetched from GitLab or the web is kept under
ETL_DATA_DIR/cache/text/<task id>/<purpose>/ exactly as fetched (before parameters are put in); when a
later fetch fails, that copy is used and the run ends with a warning saying so.
"""
import datetime
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from connections.protocols import ConnectorError
from runs.errors import PipelineError

CACHED_KINDS = ("gitlab", "web")
REQUIREMENTS = "requirements.txt"


@dataclass
class TextSource:
    task: object
    purpose: str  # "source" or "processing"
    label: str  # what the text is, for messages: "query", "script", "command", "processing script"
    location: str
    inline: str
    connection: object
    path: str
    entry: str

    @property
    def remote(self):
        return self.location == "remote"

    @property
    def cached(self):
        return bool(self.task.cache_remote_text and self.connection is not None
                    and self.connection.kind in CACHED_KINDS)

    def describe(self):
        """Identifies what is fetched, so a cached copy is never used for another file."""
        return {"connection": self.connection.pk if self.connection else None, "path": self.path.strip(),
                "entry": self.entry.strip()}


def text_source(task, purpose="source"):
    if purpose == "processing":
        return TextSource(task, purpose, "processing script", task.processing_location or "inline",
                          task.processing_script or "", task.processing_connection, task.processing_path or "",
                          task.processing_entry or "")
    kind = task.source  # which field holds the typed-in text, and what it is called, are the kind's
    field, label = kind.text_field or "query", kind.text_label or "query"
    return TextSource(task, purpose, label, task.text_location or "inline", getattr(task, field) or "",
                      task.text_connection, task.text_path or "", task.text_entry or "")


def load_text(task, purpose="source", *, warn=None, log=None):
    """The query or command text exactly as stored or fetched (parameters not yet put in)."""
    source = text_source(task, purpose)
    if not source.remote:
        return source.inline
    with tempfile.TemporaryDirectory(prefix="etl-text-") as folder:
        main = obtain(source, Path(folder), warn=warn, log=log)
        return decode((Path(folder) / main).read_bytes(), source)


def load_script(task, purpose, target_dir, *, warn=None, log=None):
    """Put the script (and, for a package or a requirements.txt beside it, its files) in `target_dir`;
    return the path of the file to run."""
    source = text_source(task, purpose)
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    if not source.remote:
        if not source.inline.strip():
            raise PipelineError(f"The task has no {source.label} to run", step="settings")
        script = target_dir / ("processing.py" if purpose == "processing" else "script.py")
        script.write_text(source.inline, encoding="utf-8")
        return script
    main = obtain(source, target_dir, warn=warn, log=log)
    script = (target_dir / main).resolve()
    if not script.is_relative_to(target_dir.resolve()) or not script.is_file():
        raise PipelineError(f"The {source.label} {main!r} is not among the files fetched from "
                            f"{source.connection.name}", step="settings")
    return script


def decode(data, source):
    """Text typed on Windows is often cp1252: accept it when the bytes are not UTF-8."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise PipelineError(f"The {source.label} file is neither UTF-8 nor Windows-1252 text", step="fetch")


# --- fetching ------------------------------------------------------------------------------------------

def obtain(source, target_dir, *, warn=None, log=None):
    """Fetch into `target_dir` (or fall back to the cached copy); return the main file's relative path."""
    if source.connection is None:
        raise PipelineError(f"The {source.label} is set to be loaded from a connection, but none is chosen",
                            step="settings")
    if not source.cached:
        main = fetch(source, target_dir)
        _log_fetched(source, target_dir, main, log)
        return main
    staging = Path(tempfile.mkdtemp(prefix="etl-fetch-"))
    try:
        try:
            main = fetch(source, staging)
        except ConnectorError as exc:
            return _use_cache(source, target_dir, exc, warn)
        _store_cache(source, staging, main)
        shutil.copytree(staging, target_dir, dirs_exist_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log_fetched(source, target_dir, main, log)
    return main


def _log_fetched(source, target_dir, main, log):
    if log:
        size = (Path(target_dir) / main).stat().st_size
        log(f"Loaded the {source.label} from {source.connection.name}: {source.path.strip() or '/'}"
            f"{' -> ' + main if source.entry else ''} ({size:,} bytes)")


def fetch(source, target_dir):
    connector = source.connection.connector()
    if connector.category == "files":
        return _fetch_from_store(connector, source, target_dir)
    if connector.kind == "gitlab":
        return _fetch_from_gitlab(connector, source, target_dir)
    if connector.kind == "web":
        return _fetch_from_web(connector, source, target_dir)
    raise PipelineError(f"A {source.label} cannot be loaded from {source.connection.name} "
                        f"({source.connection.kind_label}): use an SFTP, FTP, SMB, GitLab or web connection",
                        step="settings")


def _entry(source):
    entry = source.entry.strip().strip("/")
    if not entry or ".." in entry.split("/"):
        raise PipelineError(f"Choose the file to run inside the folder, e.g. main.py (not {entry!r})",
                            step="settings")
    return entry


def _fetch_from_store(store, source, target_dir):
    path = source.path.strip()
    if not path:
        raise PipelineError(f"Set the path of the {source.label} on {source.connection.name}", step="settings")
    with store.session() as session:
        if source.entry:
            folder = store.join(path)
            names = session.list(folder)
            if not names:
                raise ConnectorError(f"The folder {folder or '/'} on {source.connection.name} holds no files",
                                     step="fetch")
            for name in names:
                session.get(posixpath.join(folder, name), str(target_dir / name))
            return _entry(source)
        remote = store.join(path)
        name = posixpath.basename(remote)
        session.get(remote, str(target_dir / name))
        beside = posixpath.join(posixpath.dirname(remote), REQUIREMENTS)
        if source.label.endswith("script") and name != REQUIREMENTS and session.exists(beside):
            session.get(beside, str(target_dir / REQUIREMENTS))
        return name


def split_ref(path):
    """`path@ref` -> (path, ref); a plain path -> (path, None)."""
    path = path.strip().strip("/")
    if "@" in path:  # a ref may hold slashes (feature/x), a path rarely holds an @
        path, ref = path.rsplit("@", 1)
        return path.strip("/"), ref.strip() or None
    return path, None


def _fetch_from_gitlab(gitlab, source, target_dir):
    path, ref = split_ref(source.path)
    if source.entry:
        gitlab.fetch_folder(path, ref, target_dir)
        return _entry(source)
    data = gitlab.fetch_bytes(path or None, ref)
    name = posixpath.basename(path or gitlab.connection.options.get("file_path") or "text")
    (target_dir / name).write_bytes(data)
    if source.label.endswith("script") and name != REQUIREMENTS:
        beside = posixpath.join(posixpath.dirname(path), REQUIREMENTS) if path else None
        if beside:
            try:
                (target_dir / REQUIREMENTS).write_bytes(gitlab.fetch_bytes(beside, ref))
            except ConnectorError:
                pass  # a script without a requirements.txt is the common case
    return name


def _fetch_from_web(web, source, target_dir):
    extra = source.path.strip()
    if extra:
        # The connection holds a base URL and the task the file under it (or a whole URL).
        import copy
        from urllib.parse import urljoin

        connection = copy.copy(web.connection)
        connection.path = urljoin(web.url.rstrip("/") + "/", extra)
        web = connection.connector()
    data, _ = web.fetch_bytes()
    name = posixpath.basename(urlsplit(web.url).path) or "text"
    if source.label.endswith("script") and not name.endswith(".py"):
        name = "script.py"
    (target_dir / name).write_bytes(data)
    return name


# --- the cache -----------------------------------------------------------------------------------------

def cache_dir(task_id, purpose):
    return Path(settings.ETL_DATA_DIR) / "cache" / "text" / str(task_id) / purpose


def _store_cache(source, staging, main):
    folder = cache_dir(source.task.pk, source.purpose)
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    shutil.copytree(staging, fresh / "files")
    meta = {"source": source.describe(), "main": main, "fetched_at": timezone.now().isoformat()}
    (fresh / "meta.json").write_text(json.dumps(meta))
    old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(fresh, folder)
    shutil.rmtree(old, ignore_errors=True)


def cached_copy(source):
    """(meta, files folder) of the cached copy of exactly this source, or None."""
    folder = cache_dir(source.task.pk, source.purpose)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("source") != source.describe():
        return None
    return meta, folder / "files"


def _use_cache(source, target_dir, exc, warn):
    cached = cached_copy(source)
    if cached is None:
        raise exc
    meta, files = cached
    shutil.copytree(files, target_dir, dirs_exist_ok=True)
    fetched = timezone.localtime(datetime.datetime.fromisoformat(meta["fetched_at"]))
    if warn:
        warn(f"The {source.label} could not be fetched from {source.connection.name}, so the run used the "
             f"cached copy from {fetched:%Y-%m-%d %H:%M:%S %Z} because: {exc.message}")
    return meta["main"]
