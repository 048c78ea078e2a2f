"""A PostgreSQL cluster of a test's own, to restart under a run: `initdb` in a temporary folder, served on a free
loopback port, run as the `postgres` account when the tests run as root (PostgreSQL refuses root), stopped and
restarted by its postmaster's PID (never the machine's own cluster on 5432)."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.servers.common import free_port, unavailable, wait_for_port

ACCOUNT = "postgres"


def _binaries():
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    unavailable("PostgreSQL's server programs (initdb, postgres) are not installed")


class PrivatePostgres:
    def __init__(self):
        self.bin = _binaries()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="etl-private-pg-"))
        self.data = self.folder / "data"
        self.process = None
        self.log_path = self.folder / "postgres.log"
        self._as = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(ACCOUNT)
            except KeyError:
                unavailable(f"no {ACCOUNT} account to run a private PostgreSQL as")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            # setpriv execs (no fork), so the process started is the postmaster itself and its PID stops it.
            self._as = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
        subprocess.run(self._as + [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                   "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, cwd=self.folder)

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self._as + [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                        "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
                        "-c", "fsync=off", "-c", "max_connections=100"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder)
        wait_for_port(self.port, self.process, timeout=30)
        # Listening is not accepting yet (the startup process may still replay): wait for a real session.
        for _ in range(100):
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"the private PostgreSQL did not start:\n{self.log_path.read_text(errors='replace')}")

    def stop(self):
        """Fast shutdown (SIGINT to the postmaster): every session is cut, as a restart by a DBA does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self):
        self.stop()
        self.start()

    def create_database(self, name):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def remove(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
