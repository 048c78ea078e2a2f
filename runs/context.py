"""What every stage of a run receives: the run's settings and a way to log, as plain values where it matters."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from runs.models import Run
from tasks.models import Task


@dataclass
class OutputFile:
    """One file a run produces. `rows` counts data rows (headers excluded); None when not tabular."""

    path: Path
    name: str
    rows: int | None = None
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    sidecar: bool = False  # an .md5 file written for another output: it travels with that one
    deliveries: list = field(default_factory=list)

    @property
    def is_empty(self):
        return self.rows == 0 if self.rows is not None else self.path.stat().st_size == 0


@dataclass
class RunContext:
    run: Run
    task: Task
    folder: Path
    params: dict
    log: Callable[..., object]
    warnings: list = field(default_factory=list)
    secrets: list = field(default_factory=list)
    # (folder, name) of each file the source stage downloaded: deleted from the server after delivery, if asked.
    fetched_source_files: list = field(default_factory=list)
    # (destination, folder, [(output, delivery record)]) of each destination expecting acknowledgement files.
    awaited_answers: list = field(default_factory=list)
    # A dry run (runs/dry_run.py): sources read through read-only sessions, scripts see ETL_DRY_RUN=1.
    dry_run: bool = False

    def warn(self, reason):
        """A problem worth telling, which does not fail the run: it ends as a warning."""
        self.warnings.append(reason)
        self.log(reason, level="warning")
