"""script_warm_start: seconds a processing script with one third-party dependency adds over a bare
`python -c pass`, once its environment is cached, in its sandbox (bubblewrap, as every script runs; goal:
at most 0.5 s)."""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from bench.common import best_of, emit, setup_django

SCRIPT = "import sys\nfrom tabulate import tabulate\nprint(tabulate([[len(sys.argv) - 1]], headers=['inputs']))\n"
RUNS = 7


class NoDestinations:
    def select_related(self, *fields):
        return []


def bench_context(folder):
    """What run_script reads of a run, without a database."""
    from runs.context import RunContext

    project = SimpleNamespace(pk=1, name="Bench", time_zone="UTC")
    task = SimpleNamespace(pk=1, name="Bench script", project=project, timeout_seconds=120, file_name="",
                           source_connection=None, destinations=NoDestinations(),
                           destinations_in_effect=lambda: [], effective=lambda name: None)
    run = SimpleNamespace(pk=1, attempt=1, trigger="manual", scheduled_for=None)
    return RunContext(run=run, task=task, folder=folder, params={}, log=lambda message, level="info": None)


def main():
    setup_django()
    from runs import scripts

    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-scripts-"))
    try:
        script = workdir / ".scripts" / "processing.py"
        script.parent.mkdir()
        script.write_text(SCRIPT)
        data = workdir / "input.csv"
        data.write_text("n\n1\n")
        ctx = bench_context(workdir)
        scripts.run_script(ctx, script, [data])  # builds and caches the environment (installs tabulate)
        ours = best_of(RUNS, scripts.run_script, ctx, script, [data])
        bare = best_of(RUNS, subprocess.run, [sys.executable, "-c", "pass"], check=True)
        emit("script_warm_start", ours - bare, "s", ref=bare, ratio=ours / bare, script_seconds=round(ours, 4),
             goal_seconds=0.5, sandbox="bubblewrap")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
