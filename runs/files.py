"""A run's files: the folder they are written in, the names they get, their checksum."""
import hashlib
import os
import re
from pathlib import Path

from django.conf import settings

from runs.errors import PipelineError


def safe_name(text):
    """`text` made safe as a file name on every file system ("output" when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "output"


def output_name(file_name, task_name, extension="csv"):
    """The output file's name: the one set on the task, else the task name made safe for a file system."""
    name = (file_name or "").strip()
    if not name:
        name = f"{safe_name(task_name)}.{extension}"
    if "/" in name or "\\" in name or name in (".", ".."):
        raise PipelineError(f"The file name {name!r} may not contain a folder", step="file name")
    return name


def run_folder(task_id, run_id):
    folder = Path(settings.ETL_DATA_DIR) / "runs" / str(task_id) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def checksum(path):
    """(size, md5 hex, sha256 hex) of a file, read once in blocks: md5 for the receivers that still ask for it
    (the .md5 sidecar), sha256 for the delivery manifest and for servers that can hash a file themselves."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            md5.update(block)
            sha256.update(block)
    return os.path.getsize(path), md5.hexdigest(), sha256.hexdigest()
