"""Runs that survive their servers: Redis (the broker) stopped and started again, and a restart of the app's own
PostgreSQL. Each test starts its own server on a free loopback port and stops it by PID."""
import subprocess
import sys
import time

import pytest

from runs.models import Run
from runs.queueing import BROKER_DOWN
from tests.fixtures.scheduling import MANAGE, cluster_environment, wait_for
from tests.servers.common import free_port, require_binary, stop_process, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)


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


@pytest.fixture
def redis():
    server = Redis(free_port())
    yield server
    server.stop()


def test_a_run_queued_while_the_broker_is_down_starts_when_it_returns(redis, start_cluster, counted_task,
                                                                      counted_source, outbox):
    task = counted_task("Broker down", seconds=0)
    # Redis is not running: the command records the run and says so, exit 0.
    command = subprocess.run([sys.executable, str(MANAGE), "run_task", str(task.pk)], capture_output=True, text=True,
                             env=cluster_environment(REDIS_URL=redis.url), cwd=MANAGE.parent, timeout=60)
    run = task.runs.get()
    assert command.returncode == 0, command.stderr[-2000:]
    assert command.stdout.strip() == f"run {run.pk} {BROKER_DOWN}"
    assert run.status == "queued" and counted_source.executions() == 0
    redis.start()
    back = time.monotonic()
    cluster = start_cluster(REDIS_URL=redis.url)
    wait_for(lambda: Run.objects.filter(pk=run.pk).exclude(status="queued").exists(), timeout=10,
             message=lambda: f"the run to start\n{cluster.log()[-3000:]}")
    assert time.monotonic() - back < 10
    wait_for(lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists(), timeout=15,
             message=lambda: f"the run to end\n{cluster.log()[-3000:]}")
    time.sleep(2)  # a second start would show now
    assert task.runs.count() == 1 and counted_source.executions() == 1 and outbox.delivered() == [run.pk]
