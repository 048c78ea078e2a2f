"""An SFTP server killed in the middle of an upload: the run says why, nothing lands under the final name, and
the retry leaves no temporary file behind on the vendor's server (its own sshd, on a free loopback port)."""
import os
import signal
import subprocess
import threading
import time

import pytest

from connections.models import Connection
from connections.protocols import ConnectorError
from runs import delivery
from runs.context import OutputFile
from runs.models import Run
from tests.servers.common import wait_for_port
from tests.servers.sshd import start_sshd

pytestmark = [pytest.mark.django_db, pytest.mark.servers]  # starts its own servers or processes

SIZE = 400 * 1024 * 1024  # long enough on loopback to be cut off while it goes


@pytest.fixture
def own_sshd():
    server = start_sshd()
    yield server
    server.stop()


def descendants(pid):
    """Every process below `pid`: sshd starts each session in a session of its own, so no group holds them."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def kill_server(server):
    """SIGKILL the listener and every session process it started, as a crashed or powered-off server."""
    for pid in [server.process.pid] + descendants(server.process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait()


def restart_server(server):
    """The same server again: same port, host key and files, as after a vendor's restart."""
    server.process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(server.workdir / "sshd_config")], stdout=subprocess.DEVNULL,
        stderr=open(server.workdir / "sshd.log", "ab"), start_new_session=True)
    wait_for_port(server.port, server.process)


def kill_when_upload_starts(server, folder, killed):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = [entry for entry in folder.iterdir() if entry.name.endswith(".part")]
        if parts and parts[0].stat().st_size > 0:
            kill_server(server)
            killed.set()
            return
        time.sleep(0.005)


def test_a_server_killed_mid_upload_fails_clearly_and_the_retry_leaves_no_part_file(
        own_sshd, organization, project, make_task, tmp_path):
    folder = own_sshd.make_folder("inbox")
    connection = Connection.objects.create(
        organization=organization, name="Vendor", kind="sftp", host=own_sshd.host, port=own_sshd.port,
        username=own_sshd.username, path=str(own_sshd.root), secrets={"password": own_sshd.password})
    task = make_task(None, "", [(connection, "inbox")], name="Big feed")
    destination = task.destinations.get()
    first = Run.objects.create(task=task, status=Run.Status.RUNNING)
    retry = Run.objects.create(task=task, status=Run.Status.RUNNING, attempt=2, first_attempt=first)
    source = tmp_path / "big.csv"
    with open(source, "wb") as handle:
        handle.truncate(SIZE)  # sparse: read fast, sent in full
    logs = []

    def attempt(run):
        output = OutputFile(path=source, name="big.csv", size=SIZE, md5="")
        return delivery.deliver_to(destination, [output], "inbox", logs.append, logs.append,
                                   transfer_key=delivery.transfer_key(run, destination))

    killed = threading.Event()
    killer = threading.Thread(target=kill_when_upload_starts, args=(own_sshd, folder, killed))
    killer.start()
    with pytest.raises(ConnectorError) as caught:
        attempt(first)
    killer.join()
    assert killed.is_set(), "the upload ended before the server could be killed: make SIZE larger"
    message = caught.value.message
    assert "failed" in message and not message.rstrip().endswith(":"), message  # a reason, not "failed: "
    assert not (folder / "big.csv").exists()
    leftovers = [entry.name for entry in folder.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".part")  # the dead server could not remove it

    restart_server(own_sshd)
    records = attempt(retry)
    assert [record["path"] for _, record in records] == [f"{own_sshd.root}/inbox/big.csv"]
    assert sorted(entry.name for entry in folder.iterdir()) == ["big.csv"]  # the retry replaced the part file
    assert (folder / "big.csv").stat().st_size == SIZE
