"""Helpers for the real servers the tests start: free ports, waiting, stopping by PID, the no-skip rule."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest


def servers_required():
    """Under CI (ETL_REQUIRE_SERVERS=1) a missing server is a failure, never a skip."""
    return os.environ.get("ETL_REQUIRE_SERVERS", "") not in ("", "0")


def unavailable(reason):
    if servers_required():
        pytest.fail(f"{reason} (ETL_REQUIRE_SERVERS is set, so this cannot be skipped)", pytrace=False)
    pytest.skip(reason)


def require_binary(path):
    found = path if os.path.isabs(path) and os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        unavailable(f"{path} is not installed")
    return found


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, process=None, timeout=15.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout}s")


def stop_process(process, timeout=10):
    """Stop one server by its PID only (never its process group: that could be ours)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def ensure_system_user(name, password):
    """A local account for sshd/smbd logins (the tests run as root, as CI does)."""
    if os.geteuid() != 0:
        unavailable("creating a test login needs root")
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}", text=True, check=True)
