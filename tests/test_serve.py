"""`manage.py serve` as an operator starts it: gunicorn (not Django's development server), static files by
WhiteNoise, the security headers, and SIGTERM ending the whole process tree."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

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
