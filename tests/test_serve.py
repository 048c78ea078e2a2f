"""`manage.py serve` as an operator starts it: gunicorn (not Django's development server), static files by
WhiteNoise, the security headers, and SIGTERM ending the whole process tree after its workers drained."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.app_world import delivered, in_app, manage
from tests.fixtures.scheduling import wait_for
from tests.servers import postgres as pg
from tests.servers.common import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.servers  # starts gunicorn and a worker cluster itself


def descendants(pid):
    """Every process below `pid`, read from /proc (children of children included)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_page(url, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited early with status {process.returncode}"
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError(f"nothing answered at {url} within {timeout} s")


def test_serve_runs_gunicorn_with_static_files_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "ETL_DATA_DIR": str(tmp_path / "data"), "ETL_LISTEN": f"127.0.0.1:{port}",
           "ETL_WEB_WORKERS": "1", "ETL_WORKERS": "1", "DJANGO_SETTINGS_MODULE": "etl_portal.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True, timeout=300)
    log = open(tmp_path / "serve.log", "w+b")
    process = subprocess.Popen(manage + ["serve"], env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    tree = []
    try:
        base = f"http://127.0.0.1:{port}"
        login = wait_for_page(f"{base}/accounts/login/", process)
        assert login.status_code == 200 and "Log in to ETL Portal" in login.text
        server = login.headers.get("Server", "")
        assert "WSGIServer" not in server and server == "gunicorn"
        policy = login.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        css = requests.get(f"{base}/static/css/portal.css", timeout=5)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert css.content == (BASE_DIR / "static" / "css" / "portal.css").read_bytes()
        admin_css = requests.get(f"{base}/static/admin/css/base.css", timeout=5)  # an app's static file too
        assert admin_css.status_code == 200
        assert requests.get(f"{base}/static/no-such-file.css", timeout=5).status_code == 404
        # Nothing written at import: the data folder holds no static copy.
        assert not (tmp_path / "data" / "static").exists()
        tree = descendants(process.pid)
        assert len(tree) >= 3, tree  # gunicorn's master and worker, the cluster

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=45) == 0
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        left_behind = [pid for pid in tree if alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in descendants(process.pid) + tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    log.seek(0)
    output = log.read().decode(errors="replace")
    assert not left_behind, output
    assert "Stopped." in output


def start_serve(environment, log_path):
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "serve"], env=environment, cwd=BASE_DIR,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_serve_drains_its_workers_a_run_finishes_or_is_handed_back(tmp_path, counted_source):
    """A routine restart: SIGTERM to `serve` reaches every worker. A run that ends within the grace finishes (and
    is delivered once); a longer one is handed back to the queue with a log line and the next `serve` runs it to
    the end. No run fails as Interrupted, none runs twice, no process is left behind."""
    port, outbox = free_port(), tmp_path / "outbox"
    outbox.mkdir()
    environment = {**os.environ, "ETL_DATA_DIR": str(tmp_path / "data"), "ETL_LISTEN": f"127.0.0.1:{port}",
                   "ETL_WEB_WORKERS": "1", "ETL_WORKERS": "2", "ETL_SHUTDOWN_GRACE_SECONDS": "4",
                   "ETL_LOCAL_ROOTS": str(tmp_path), "DJANGO_SETTINGS_MODULE": "etl_portal.settings"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        environment.pop(name, None)
    manage(environment, "migrate", "--noinput", "-v0")
    host, pg_port, user = pg.dsn_parts()
    world = in_app(environment, "seed", source={"host": host, "port": pg_port, "username": user,
                                                "database": counted_source.database},
                   outbox=str(outbox), seconds=[2, 10])
    short_task, long_task = world["tasks"]
    process = start_serve(environment, tmp_path / "serve.log")
    again, tree = None, []
    try:
        wait_for_page(f"http://127.0.0.1:{port}/accounts/login/", process)
        for task in world["tasks"]:
            manage(environment, "run_task", str(task))
        wait_for(lambda: counted_source.executions() == 2, timeout=30,
                 message=lambda: f"both queries to start\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
        tree = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        left_behind = [pid for pid in tree if alive(pid)]
        assert not left_behind, (tmp_path / "serve.log").read_text()[-3000:]

        first = {run["task"]: run for run in in_app(environment, "report", tasks=world["tasks"])["runs"]}
        assert first[short_task]["status"] == "succeeded" and first[short_task]["files"] == 1
        handed_back = first[long_task]
        assert handed_back["status"] == "queued" and handed_back["attempt"] == 1 and not handed_back["error"]
        assert any(line.startswith("Handed back to the queue") for line in handed_back["log"])
        assert delivered(outbox) == [first[short_task]["id"]]

        again = start_serve(environment, tmp_path / "serve-again.log")
        wait_for(lambda: delivered(outbox) == sorted(run["id"] for run in first.values()), timeout=60,
                 message=lambda: f"the handed-back run to end\n{(tmp_path / 'serve-again.log').read_text()[-3000:]}")
        time.sleep(2)  # a second start or delivery would show now
        seen = in_app(environment, "report", tasks=world["tasks"])
    finally:
        for server in (process, again):
            if server is not None and server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
        for pid in tree + (descendants(again.pid) if again is not None else []):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert [(run["task"], run["attempt"], run["status"]) for run in seen["runs"]] == \
        [(short_task, 1, "succeeded"), (long_task, 1, "succeeded")]
    assert counted_source.executions() == 3  # the long query twice (handed back, then to the end), the short once
    assert seen["files"] == 2 and delivered(outbox) == sorted(run["id"] for run in seen["runs"])
    assert not any(line.startswith("Interrupted") for run in seen["runs"] for line in run["log"])
