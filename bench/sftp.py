"""sftp_upload and sftp_upload_memory_growth: the portal's SFTP upload against OpenSSH's `sftp` put.

Both upload the same 1 GiB file to the same local sshd in the same run; each of our uploads runs in a child
process so its peak memory is its own. ETL_BENCH_SFTP_MIB changes the size for a quick look.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit, run_child, setup_django

MIB = 1024 * 1024
RUNS = 3
SMALL_MIB = 100


def large_mib():
    return int(os.environ.get("ETL_BENCH_SFTP_MIB", "1024"))


def make_file(path, mib):
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))
    return path


def settle(remote_folder):
    """Start each run from the same state: no earlier upload left, nothing waiting to be written back."""
    for entry in remote_folder.iterdir():
        entry.unlink()
    os.sync()


def openssh_put(sshd, key_file, source, remote_path, workdir):
    batch = workdir / "batch"
    batch.write_text(f'put "{source}" "{remote_path}"\n')
    start = time.perf_counter()
    subprocess.run(["sftp", "-q", "-P", str(sshd.port), "-i", str(key_file), "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-b", str(batch),
                    f"{sshd.username}@{sshd.host}"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def portal_put(sshd, key_file, source, remote_path):
    return run_child("bench.sftp", "--child", sshd.host, str(sshd.port), sshd.username, str(key_file), str(source),
                     str(remote_path))


def main():
    from tests.servers.sshd import start_sshd

    setup_django()
    sshd = start_sshd()
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-sftp-"))
    try:
        key_file = workdir / "user_key"
        key_file.write_text(sshd.private_key)
        key_file.chmod(0o600)
        remote_folder = sshd.make_folder("bench")
        mib = large_mib()
        source = make_file(workdir / "large.bin", mib)
        size = source.stat().st_size
        ours, theirs = [], []
        for _ in range(RUNS):  # alternating, so both see the same disk and page-cache weather
            settle(remote_folder)
            ours.append(portal_put(sshd, key_file, source, remote_folder / "portal.bin"))
            settle(remote_folder)
            theirs.append(openssh_put(sshd, key_file, source, remote_folder / "openssh.bin", workdir))
        best = min(ours, key=lambda run: run["seconds"])
        ours_rate, theirs_rate = size / best["seconds"] / 1e6, size / min(theirs) / 1e6
        emit("sftp_upload", ours_rate, "MB/s", ref=theirs_rate, ratio=ours_rate / theirs_rate,
             seconds=round(best["seconds"], 3), openssh_seconds=round(min(theirs), 3), bytes=size,
             peak_rss_kib=max(run["peak_kib"] for run in ours),
             runs_seconds=[round(run["seconds"], 3) for run in ours],
             openssh_runs_seconds=[round(seconds, 3) for seconds in theirs])
        settle(remote_folder)
        small_source = make_file(workdir / "small.bin", SMALL_MIB)
        small = portal_put(sshd, key_file, small_source, remote_folder / "small.bin")
        large_peak = max(run["peak_kib"] for run in ours)
        emit("sftp_upload_memory_growth", large_peak, "KiB", ref=small["peak_kib"],
             ratio=large_peak / small["peak_kib"], bytes_small=small["bytes"], bytes_large=size)
        settle(remote_folder)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        sshd.stop()
        shutil.rmtree(sshd.workdir, ignore_errors=True)


def child(host, port, username, key_file, source, remote_path):
    """One timed upload through the connector, as a task's delivery does it: connect, put, close."""
    setup_django()
    from connections.models import Connection

    connection = Connection(kind="sftp", host=host, port=int(port), username=username,
                            secrets={"private_key": Path(key_file).read_text()})
    start = time.perf_counter()
    with connection.connector().session() as session:
        session.put(source, remote_path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_kib": peak, "bytes": os.path.getsize(source)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:8])
    else:
        main()
