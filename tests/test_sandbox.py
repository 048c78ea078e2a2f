"""The sandbox every user script runs in: it sees its run folder, its environment and the system, nothing
else of ETL_DATA_DIR; it never runs as root; every process it starts dies with the run."""
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from runs import execution, orchestration, queueing, sandbox
from tests.fixtures.processes import processes_with, still_running_with, unique_sleep
from tests.fixtures.sources import log_text

pytestmark = pytest.mark.django_db

ATTEMPTS = textwrap.dedent('''\
    import json, os, subprocess, sys

    paths = json.loads(PATHS)
    results = {}

    def attempt(name, action):
        try:
            action()
            results[name] = "allowed"
        except OSError as exc:
            results[name] = type(exc).__name__

    def write(path):
        with open(path, "w") as out:
            out.write("escaped")

    attempt("read the key", lambda: open(paths["key"]).read())
    attempt("read the portal's own key", lambda: open(paths["portal_key"]).read())
    attempt("read the database", lambda: open(paths["database"], "rb").read())
    attempt("read another run's file", lambda: open(paths["other_run_file"]).read())
    attempt("list another run's folder", lambda: os.listdir(paths["other_run"]))
    attempt("list the runs", lambda: os.listdir(paths["runs"]))
    attempt("read a cached text", lambda: open(paths["cached_text"]).read())
    attempt("read /etc/shadow", lambda: open("/etc/shadow").read())
    attempt("list root's home", lambda: os.listdir("/root/.pyenv"))
    attempt("write in ETL_DATA_DIR", lambda: write(paths["data"] + "/escaped.txt"))
    attempt("write beside the run folder", lambda: write(paths["runs"] + "/escaped.txt"))
    attempt("write in the test's folder", lambda: write(paths["outside"] + "/escaped.txt"))
    attempt("write in /etc", lambda: write("/etc/escaped.txt"))
    attempt("write in the portal's code", lambda: write(paths["code"] + "/escaped.txt"))
    write("mine.txt")  # its own folder is writable

    # A detached child (setsid) and a double-forked grandchild in a new session: both must die with the run.
    subprocess.Popen(["setsid", "sleep", paths["marker"]], stdout=subprocess.DEVNULL)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", paths["marker"]])
        os._exit(0)
    os.wait()
    seen = []
    for name in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            cmdline = open(f"/proc/{name}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if cmdline:  # an empty one is a zombie: `setsid` forks and its first process exits at once
            seen.append(cmdline)
    print("uid", os.getuid(), "processes seen", sorted(os.path.basename(line.split("\\0")[0]) for line in seen))
    print("RESULTS", json.dumps(results))
''')


@pytest.fixture
def secrets_around(data_dir, tmp_path):
    """What a script must not reach: a key, a database, another run's file, a cached text.
    `secrets_around(task)` gives their paths, with the task's runs folder (the one on the way to its run's own
    folder: named by the task's id, which depends on the tests run before) and another run in it."""
    (data_dir / "fernet.key").write_text("the-fernet-key")
    sqlite3.connect(data_dir / "etl_portal.sqlite3").execute("create table secrets (value text)").connection.close()
    cached = data_dir / "cache" / "text" / "1" / "source"
    cached.mkdir(parents=True)
    (cached / "script.py").write_text("a cached text")
    portal_key = Path(django_settings.BASE_DIR) / "data" / "fernet.key"  # the default ETL_DATA_DIR's
    marker = unique_sleep()

    def around(task=None):
        runs = data_dir / "runs" / str(task.pk if task else 0)
        other = runs / "999999"
        other.mkdir(parents=True, exist_ok=True)
        (other / "secret.csv").write_text("another run's data\n")
        return {"key": str(data_dir / "fernet.key"), "portal_key": str(portal_key),
                "database": str(data_dir / "etl_portal.sqlite3"), "other_run": str(other),
                "other_run_file": str(other / "secret.csv"), "runs": str(runs),
                "cached_text": str(cached / "script.py"), "data": str(data_dir), "outside": str(tmp_path),
                "code": str(django_settings.BASE_DIR), "marker": marker}

    return around


def attempts(paths):
    return ATTEMPTS.replace("json.loads(PATHS)", f"json.loads({json.dumps(paths)!r})")


def results_of(run, label="script.py"):
    line = next(line for line in log_text(run).splitlines() if line.startswith(f"[{label}] RESULTS "))
    return json.loads(line.split("RESULTS ", 1)[1])


def test_a_script_reaches_nothing_outside_its_folder_and_leaves_no_process(
        source_task, run_task, secrets_around, data_dir, tmp_path):
    task = source_task(name="Escape artist", source_kind="script", script="pass")
    paths = secrets_around(task)
    task.script = attempts(paths)
    task.save()
    started = time.monotonic()
    run = run_task(task)
    log = log_text(run)
    assert run.status == "succeeded", log
    assert time.monotonic() - started < 20  # the detached children did not keep the run going

    results = results_of(run)
    assert set(results.values()) <= {"FileNotFoundError", "PermissionError", "OSError"}, results
    assert len(results) == 14
    # Hidden, not merely refused: the key, the database, other runs and cached texts are not there at all.
    for name in ("read the key", "read the database", "read another run's file", "list another run's folder",
                 "read a cached text", "read the portal's own key"):
        assert results[name] == "FileNotFoundError", (name, results)
    # The folders on the way to its own can be passed through, not listed.
    assert results["list the runs"] == results["list root's home"] == "PermissionError"
    assert results["read /etc/shadow"] == "PermissionError"
    # Not root, and in a PID namespace of its own: only the sandbox's init (bwrap), itself and its children.
    seen = next(line for line in log.splitlines() if line.startswith("[script.py] uid "))
    uid, processes = seen.split()[2], json.loads(seen.split("processes seen ", 1)[1].replace("'", '"'))
    assert uid != "0" and processes[0] == "bwrap" and len(processes) <= 4, seen  # its two children may be
    assert set(processes) <= {"bwrap", "python", "setsid", "sleep"}, seen          # between fork and exec
    for escaped in (data_dir / "escaped.txt", Path(paths["runs"]) / "escaped.txt", tmp_path / "escaped.txt",
                    Path("/etc/escaped.txt"), Path(django_settings.BASE_DIR) / "escaped.txt"):
        assert not escaped.exists()
    assert list(run.files.values_list("name", flat=True)) == ["mine.txt"]
    assert not still_running_with(paths["marker"])


def test_a_processing_script_is_sandboxed_too(sqlite_db, source_task, run_task, secrets_around):
    task = source_task(source_connection=sqlite_db, query="select 1 as n", file_name="numbers.csv",
                       processing_location="inline", processing_script="pass")
    paths = secrets_around(task)
    task.processing_script = attempts(paths)
    task.save()
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    results = results_of(run, "processing.py")
    assert len(results) == 14 and "allowed" not in results.values(), results
    assert not still_running_with(paths["marker"])


DETACHING_SLEEPER = textwrap.dedent('''\
    import os, subprocess, time
    subprocess.Popen(["setsid", "sleep", {marker!r}], stdout=subprocess.DEVNULL)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", {marker!r}])
        os._exit(0)
    os.wait()
    open("started", "w").close()
    print("started", flush=True)
    time.sleep(300)
''')


@pytest.mark.slow  # waits for a real timeout
def test_a_timeout_kills_the_detached_children_too(source_task, run_task):
    marker = unique_sleep()
    task = source_task(source_kind="script", script=DETACHING_SLEEPER.format(marker=marker), timeout_seconds=2)
    started = time.monotonic()
    run = run_task(task)
    assert run.status == "failed"
    assert run.error == "Timed out: the run took longer than its limit of 2 seconds and was stopped"
    assert "[script.py] started" in log_text(run)
    assert time.monotonic() - started < 15
    assert not still_running_with(marker)


@pytest.mark.django_db(transaction=True)
def test_a_cancel_kills_the_detached_children_too(source_task):
    marker = unique_sleep()
    task = source_task(name="Detacher", source_kind="script", script=DETACHING_SLEEPER.format(marker=marker))
    run = queueing.enqueue_run(task)
    worker = threading.Thread(target=lambda: execution.execute_next(worker="test:1:1"), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while len(processes_with(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with(marker)) == 2  # the setsid child and the double-forked grandchild
    orchestration.cancel_run(run)
    worker.join(timeout=15)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert not still_running_with(marker)


def test_without_bubblewrap_a_script_is_not_run_and_the_run_says_why(source_task, run_task, settings, data_dir):
    settings.ETL_SANDBOX_BWRAP = str(data_dir / "no-such-bwrap")
    task = source_task(source_kind="script", script="open('ran', 'w').close()\n")
    run = run_task(task)
    assert run.status == "failed"
    assert run.error == (
        f"The script was not run: scripts run in a sandbox made with bubblewrap, and {data_dir}/no-such-bwrap "
        "is not installed on the portal's server. Install the Debian package bubblewrap (scripts/system-deps.sh "
        "does it when run as root)")
    assert not list(data_dir.glob("runs/*/*/ran"))


def test_when_bwrap_cannot_make_the_sandbox_the_run_says_why(source_task, run_task, settings, tmp_path):
    # A kernel that refuses namespaces cannot be set up here without changing the machine for everyone;
    # this stand-in fails the way bwrap 0.8 does then, before anything runs.
    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace, likely because the "
                        "kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n")
    refusing.chmod(0o755)
    settings.ETL_SANDBOX_BWRAP = str(refusing)
    task = source_task(source_kind="script", script="print('ran')\n")
    run = run_task(task)
    assert run.status == "failed"
    assert run.error == ("The script was not run: it could not be sandboxed on this server (bwrap: No permissions "
                         "to create new namespace, likely because the kernel does not allow non-privileged user "
                         "namespaces.)")


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox account is only used when the portal runs as root")
def test_as_root_without_the_sandbox_account_a_script_is_not_run(source_task, run_task, settings, data_dir):
    settings.ETL_SANDBOX_USER = "etl-no-such-account"
    task = source_task(source_kind="script", script="open('ran', 'w').close()\n")
    run = run_task(task)
    assert run.status == "failed"
    assert "the unprivileged account etl-no-such-account they run as does not exist" in run.error
    assert "scripts/system-deps.sh" in run.error
    assert not list(data_dir.glob("runs/*/*/ran"))


def test_links_a_script_leaves_to_files_outside_its_folder_are_not_delivered(
        source_task, run_task, dropbox, secrets_around):
    script = textwrap.dedent(f'''\
        import os
        os.symlink({secrets_around()["key"]!r}, "key.csv")
        os.symlink("/etc/passwd", "passwd.csv")
        os.mkfifo("pipe.csv")
        with open("report.csv", "w") as out:
            out.write("a,b\\n")
        os.symlink("report.csv", "same-report.csv")
    ''')
    task = source_task(source_kind="script", script=script, destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "warning", log_text(run)
    assert ("Removed what the script left in the run folder that points outside it or is not a file: "
            "key.csv, passwd.csv, pipe.csv") in log_text(run)
    assert sorted(path.name for path in dropbox.folder.iterdir()) == ["report.csv", "same-report.csv"]
    assert "the-fernet-key" not in "".join(path.read_text() for path in dropbox.folder.iterdir())


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None,
                    reason="acts as an unprivileged portal user, which needs root to switch to")
def test_a_portal_not_running_as_root_sandboxes_scripts_as_its_own_user(settings):
    """The same hiding, with bwrap unprivileged (a user namespace) as the portal's own user."""
    entry = pwd.getpwnam(sandbox.DEFAULT_USER)
    base = Path(tempfile.mkdtemp(prefix="etl-sandbox-test-"))
    try:
        data, private = base / "data", base / "tmp"
        folder, other, environment = data / "runs" / "1" / "2", data / "runs" / "1" / "3", data / "envs" / "e"
        for path in (folder, other, environment, private):
            path.mkdir(parents=True)
        (data / "fernet.key").write_text("the-fernet-key")
        (other / "secret.csv").write_text("secret")
        for path in [base, *base.rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
        settings.ETL_DATA_DIR = data
        arguments = sandbox.bwrap_arguments(folder, [environment], private, user=None)
        probe = (f"cat {data}/fernet.key; ls {other}; ls {environment} && echo env-visible; "
                 f"echo ok > {folder}/mine.txt && echo wrote; echo x > {data}/escaped.txt; id -u")
        result = subprocess.run(
            ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
             shutil.which("bwrap"), *arguments, "--", "sh", "-c", probe],
            capture_output=True, text=True, timeout=30, cwd="/")
        assert "the-fernet-key" not in result.stdout and "secret.csv" not in result.stdout
        assert "No such file or directory" in result.stderr and "env-visible" in result.stdout
        assert "wrote" in result.stdout and (folder / "mine.txt").read_text() == "ok\n"
        assert result.stdout.split()[-1] == str(entry.pw_uid)
        assert not (data / "escaped.txt").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
