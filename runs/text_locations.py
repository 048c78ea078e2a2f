"""Where a task's query, script or command comes from: typed in, or fetched at run time from a connection.

Any connection with the TEXT capability is read through its protocol's `fetch_text_files` (file stores,
GitLab, a web server; a path on GitLab may name a ref after `@`). A script may be a whole folder (a
package): `entry` then names the file to run.

With the task's "cache" option, what was fetched from a protocol that `caches_text` (GitLab, the web) is
kept under ETL_DATA_DIR/cache/text/<task id>/<purpose>/ exactly as fetched (before parameters are put in); when a
later fetch fails, that copy is used and the run ends with a warning saying so.
"""
import datetime
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from connections.protocols import TEXT, ConnectorError, registry
from connections.protocols.gitlab import split_ref  # noqa: F401  (where a task's path names a GitLab ref)
from runs.errors import PipelineError



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
                    and getattr(self.connection.protocol, "caches_text", False))

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
    """Copy the source's text into `target_dir` through its connection's protocol; the name of the file."""
    connector = source.connection.connector()
    if TEXT not in connector.capabilities:
        raise PipelineError(f"A {source.label} cannot be loaded from {source.connection.name} "
                            f"({source.connection.kind_label}): use one of {registry.labels_with(TEXT)}",
                            step="settings")
    name = connector.fetch_text_files(source.path, Path(target_dir), what=source.label, folder=bool(source.entry),
                                      script=source.label.endswith("script"))
    return _entry(source) if name is None else name


def _entry(source):
    entry = source.entry.strip().strip("/")
    if not entry or ".." in entry.split("/"):
        raise PipelineError(f"Choose the file to run inside the folder, e.g. main.py (not {entry!r})",
                            step="settings")
    return entry


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
