"""Python processing and source scripts: their own environments, the contract, the issue's example."""
import textwrap
import time

import pytest

from runs import scripts
from tests.fixtures.processes import still_running_with, unique_sleep
from tests.fixtures.sources import log_text

pytestmark = pytest.mark.django_db

EXAMPLE_SCRIPT = textwrap.dedent('''\
    import csv
    import os
    import sys

    folder = os.path.dirname(sys.argv[1])
    paths = []
    with open(sys.argv[1], newline="") as handle:
        for n, row in enumerate(csv.reader(handle), start=1):
            path = os.path.join(folder, f"test-{n}.txt")
            with open(path, "w") as out:
                out.write(",".join(row) + "\\n")
            paths.append(path)
    print(paths)
''')


def test_the_issue_example_delivers_one_file_per_row(sqlite_db, dropbox, source_task, run_task):
    task = source_task(source_connection=sqlite_db, query="select 1 union all select 2", include_headers=False,
                       processing_location="inline", processing_script=EXAMPLE_SCRIPT,
                       destinations=[(dropbox, "out")])

    run = run_task(task)

    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "out" / "test-1.txt").read_text() == "1\n"
    assert (dropbox.folder / "out" / "test-2.txt").read_text() == "2\n"
    assert sorted(run.files.values_list("name", "size")) == [("test-1.txt", 2), ("test-2.txt", 2)]
    assert all(record.deliveries[0]["path"] == f"out/{record.name}" for record in run.files.all())


# --- the contract ----------------------------------------------------------------------------------------

CONTRACT_SCRIPT = textwrap.dedent('''\
    import json
    import os
    import sys

    print("argv", json.dumps([os.path.basename(arg) for arg in sys.argv]))
    print("cwd is the run folder:", os.getcwd() == os.environ["ETL_RUN_FOLDER"])
    print("region", os.environ["ETL_PARAM_REGION"], json.loads(os.environ["ETL_PARAMS"])["region"])
    print("source", os.environ["ETL_SOURCE_KIND"], os.environ["ETL_SOURCE_NAME"])
    print("names", " ".join(sorted(name for name in os.environ if not name.startswith("ETL_"))))
    print("a warning", file=sys.stderr)
    try:
        import django
        print("django is visible")
    except ImportError:
        print("django is not visible")
''')


@pytest.fixture
def region_parameter(project):
    from projects.models import Parameter

    return Parameter.objects.create(project=project, key="region", value="EMEA")


def test_a_processing_script_sees_its_inputs_metadata_and_nothing_of_the_portal(
        sqlite_db, source_task, run_task, region_parameter):
    task = source_task(source_connection=sqlite_db, query="select 1 as n", file_name="numbers.csv",
                       processing_location="inline", processing_script=CONTRACT_SCRIPT)
    run = run_task(task)
    log = log_text(run)
    assert run.status == "succeeded", log
    assert '[processing.py] argv ["processing.py", "numbers.csv"]' in log
    assert "[processing.py] cwd is the run folder: True" in log
    assert "[processing.py] region EMEA EMEA" in log
    assert "[processing.py] source sqlite Local SQLite" in log
    assert "[processing.py] names HOME LANG LC_ALL PATH TZ VIRTUAL_ENV" in log
    assert "[processing.py stderr] a warning" in log
    assert "[processing.py] django is not visible" in log
    # No list printed: the source's file goes on unchanged.
    assert list(run.files.values_list("name", flat=True)) == ["numbers.csv"]


def test_output_lines_reach_the_log_in_order(sqlite_db, source_task, run_task):
    script = "import sys\nfor n in range(3):\n    print('line', n)\nprint('oops', file=sys.stderr)\n"
    task = source_task(source_connection=sqlite_db, query="select 1", processing_location="inline",
                       processing_script=script)
    run = run_task(task)
    lines = log_text(run).splitlines()
    assert [line for line in lines if line.startswith("[processing.py] ")] == [
        "[processing.py] line 0", "[processing.py] line 1", "[processing.py] line 2"]
    assert run.log_lines.get(message="[processing.py stderr] oops").level == "warning"


def test_a_failing_script_fails_the_run_with_its_last_error_lines(sqlite_db, source_task, run_task):
    script = "import json\nprint('starting')\njson.loads('{not json')\n"
    task = source_task(source_connection=sqlite_db, query="select 1", processing_location="inline",
                       processing_script=script)
    run = run_task(task)
    assert run.status == "failed"
    assert run.error == ("The processing script failed (exit status 1): json.decoder.JSONDecodeError: Expecting "
                         "property name enclosed in double quotes: line 1 column 2 (char 1) (at processing.py line 3)")
    assert "[processing.py stderr] Traceback (most recent call last):" in log_text(run)
    assert not run.files.exists()


def test_a_script_that_exits_with_a_status_says_its_last_lines(sqlite_db, source_task, run_task):
    script = "import sys\nprint('no input today', file=sys.stderr)\nsys.exit(3)\n"
    task = source_task(source_connection=sqlite_db, query="select 1", processing_location="inline",
                       processing_script=script)
    run = run_task(task)
    assert (run.status, run.error) == ("failed", "The processing script failed (exit status 3): no input today")


def test_a_listed_path_outside_the_run_folder_is_refused(sqlite_db, source_task, run_task):
    task = source_task(source_connection=sqlite_db, query="select 1", processing_location="inline",
                       processing_script="print(['/etc/passwd'])")
    run = run_task(task)
    assert run.status == "failed"
    assert run.error.startswith("The script listed /etc/passwd, which is outside the run folder")


@pytest.mark.slow  # waits for a real timeout
def test_a_timeout_kills_the_script_and_every_process_it_started(sqlite_db, source_task, run_task, tmp_path):
    # The script runs in its own PID namespace, so its child's pid means nothing out here: the child is
    # found by a unique argument instead.
    marker = unique_sleep()
    script = textwrap.dedent(f'''\
        import subprocess, time
        child = subprocess.Popen(["sleep", {marker!r}])
        print("started", flush=True)
        time.sleep(300)
    ''')
    task = source_task(source_connection=sqlite_db, query="select 1", processing_location="inline",
                       processing_script=script, timeout_seconds=2)
    started = time.monotonic()
    run = run_task(task)
    assert time.monotonic() - started < 10
    assert run.status == "failed"
    assert run.error == "Timed out: the run took longer than its limit of 2 seconds and was stopped"
    assert ("The processing script and every process it started were stopped: the run reached its timeout"
            in log_text(run))
    assert "[processing.py] started" in log_text(run)
    assert not still_running_with(marker)


def test_a_script_source_outputs_the_files_it_writes(source_task, run_task, dropbox):
    script = textwrap.dedent('''\
        import os
        with open("report.txt", "w") as out:
            out.write("task " + os.environ["ETL_TASK_NAME"] + "\\n")
        open(".hidden", "w").close()
    ''')
    task = source_task(name="Script report", source_kind="script", script=script, destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "report.txt").read_text() == "task Script report\n"
    assert list(run.files.values_list("name", flat=True)) == ["report.txt"]


# --- dependencies and environments ----------------------------------------------------------------------

def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_dependencies_come_from_inline_metadata_first(tmp_path):
    script = write(tmp_path, "main.py", '''\
        # /// script
        # dependencies = ["Requests>=2", "tabulate"]
        # ///
        import yaml
    ''')
    write(tmp_path, "requirements.txt", "pandas\n")
    found = scripts.find_dependencies(script)
    assert (found.origin, found.requirements) == ("inline metadata", ["requests>=2", "tabulate"])


def test_inline_metadata_typed_in_a_browser_with_windows_line_ends(tmp_path):
    script = tmp_path / "main.py"
    script.write_bytes(b'# /// script\r\n# dependencies = ["tabulate"]\r\n# ///\r\nimport tabulate\r\n')
    assert scripts.find_dependencies(script).requirements == ["tabulate"]


def test_dependencies_come_from_a_requirements_file_beside_the_script(tmp_path):
    script = write(tmp_path, "main.py", "import yaml\n")
    write(tmp_path, "requirements.txt", "# pinned\nTabulate==0.9.0  # tables\n\npython_slugify\n")
    found = scripts.find_dependencies(script)
    assert (found.origin, found.requirements) == ("requirements.txt", ["python-slugify", "tabulate==0.9.0"])


def test_dependencies_are_inferred_from_imports(tmp_path):
    script = write(tmp_path, "main.py", '''\
        import csv, os.path
        import yaml
        from sklearn.linear_model import LinearRegression
        from PIL import Image
        from bs4 import BeautifulSoup
        from dateutil import parser
        import helpers
        from . import sibling
        try:
            import ujson as json
        except ImportError:
            import json
    ''')
    write(tmp_path, "helpers.py", "import tabulate\n")
    found = scripts.find_dependencies(script)
    assert found.origin == "imports"
    assert found.requirements == ["beautifulsoup4", "pillow", "python-dateutil", "pyyaml", "scikit-learn",
                                  "tabulate"]


def test_two_runs_building_the_same_environment_build_it_once(tmp_path):
    import threading

    messages = []
    dependencies = scripts.Dependencies("none", [])
    threads = [threading.Thread(target=scripts.ensure_environment, args=(dependencies, lambda m, level="info":
                                                                         messages.append(m)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(message.startswith("Building environment") for message in messages) == 1
    assert sum(message.startswith("Reused environment") for message in messages) == 1
    environments = [path for path in (tmp_path / "data" / "envs").iterdir() if not path.name.startswith(".")]
    assert len(environments) == 1 and (environments[0] / "bin" / "python").exists()


def test_environments_no_run_used_for_30_days_are_removed_by_the_system_job(tmp_path):
    import os

    from projects import system_jobs

    dependencies = scripts.Dependencies("none", [])
    stale = scripts.ensure_environment(dependencies).path
    forty_days_ago = time.time() - 40 * 86400
    os.utime(stale / scripts.LAST_USED, (forty_days_ago, forty_days_ago))
    recent = scripts.environments_root() / ("0" * 32)  # another dependency set, used yesterday
    recent.mkdir()
    (recent / scripts.MARKER).write_text("{}")
    os.utime(recent / scripts.MARKER, (time.time() - 86400,) * 2)
    crashed_build = scripts.environments_root() / f".build-{'1' * 32}-deadbeef"
    crashed_build.mkdir()
    os.utime(crashed_build, (time.time() - 2 * 86400,) * 2)

    size = scripts._size(stale)
    result = system_jobs.prune_script_environments(days=30)

    assert result == f"1 script environment(s) unused for 30 days removed, {size / 1e6:,.1f} MB freed"
    assert not stale.exists() and recent.exists() and not crashed_build.exists()
    messages = []
    again = scripts.ensure_environment(dependencies, lambda message, level="info": messages.append(message))
    assert again.path == stale and not again.reused and messages[0].startswith("Building environment")
    # Using an environment marks it: reused today, it survives the next pass.
    scripts.ensure_environment(dependencies)
    assert system_jobs.prune_script_environments(days=30).startswith("0 script environment(s)")
    assert stale.exists()


def test_a_package_from_the_registry_is_installed_once_and_then_reused(sqlite_db, source_task, run_task):
    script = textwrap.dedent('''\
        import sys
        from tabulate import tabulate
        import csv
        rows = list(csv.reader(open(sys.argv[1])))
        print(tabulate(rows[1:], headers=rows[0], tablefmt="github"))
    ''')
    task = source_task(source_connection=sqlite_db, query="select 1 as n, 'a' as letter",
                       processing_location="inline", processing_script=script)
    first = run_task(task)
    assert first.status == "succeeded", log_text(first)
    assert "Building environment" in log_text(first) and "(tabulate, from imports)" in log_text(first)
    assert "uv: + tabulate==" in log_text(first)
    assert "[processing.py] |   n | letter   |" in log_text(first)

    second = run_task(task)
    assert second.status == "succeeded", log_text(second)
    assert "Reused environment" in log_text(second) and "Building environment" not in log_text(second)


@pytest.mark.slow  # waits for a real timeout
def test_outside_a_watched_run_the_step_deadline_still_stops_a_script(tmp_path, settings):
    from runs import script_process

    started = time.monotonic()
    outcome = script_process.run_streamed(["sh", "-c", "echo going; sleep 60"], cwd=tmp_path,
                                          env={"PATH": "/bin:/usr/bin"}, timeout=1,
                                          log=lambda message, level="info": None, label="sh")
    assert outcome.timed_out and outcome.last_line == "going"
    assert time.monotonic() - started < 8


def test_no_source_files_means_no_processing_run(sshd, sftp_connection, source_task, run_task, tmp_path):
    folder = sshd.make_folder(f"none-{tmp_path.name[-12:]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    task = source_task(source_kind="files", source_connection=sftp_connection, file_folder=folder.name,
                       file_pattern="*.csv", on_no_files="succeed", processing_location="inline",
                       processing_script="import sys\nopen(sys.argv[1])\n")
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert "The source produced no files, so the processing script was not run" in log_text(run)
