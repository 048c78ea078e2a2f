"""A Redis of a test's own on a free loopback port, without persistence, stopped by its PID."""
import subprocess

from tests.servers.common import require_binary, stop_process, wait_for_port


class Redis:
    def __init__(self, port):
        self.port, self.process = port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self):
        self.process = subprocess.Popen([require_binary("redis-server"), "--port", str(self.port), "--bind",
                                         "127.0.0.1", "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def stop(self):
        stop_process(self.process)
