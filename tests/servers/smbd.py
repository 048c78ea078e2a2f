"""Samba's smbd on 127.0.0.1 (SMB2 over direct TCP) with one share and a test user in its own passdb."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers.common import ensure_system_user, free_port, require_binary, stop_process, wait_for_port

USER = "etl_smb_test"
PASSWORD = "Smb-test-Pa55word!"
SHARE = "etl"


@dataclass
class SmbServer:
    host: str
    port: int
    username: str
    password: str
    share: str
    root: Path  # the share's folder on disk
    readonly_folder: str  # in the share; the user may read, not write
    locked_folder: str  # in the share; the user may not even list it
    process: subprocess.Popen = None
    workdir: Path = None

    def make_folder(self, name):
        """A fresh folder in the share that the test user can write to."""
        folder = self.root / name
        folder.mkdir(parents=True)
        account = pwd.getpwnam(self.username)
        os.chown(folder, account.pw_uid, account.pw_gid)
        return folder

    def stop(self):
        stop_process(self.process)
        # smbd starts samba-dcerpcd on demand; it is not our child, so stop it by its pid file.
        pid_file = self.workdir / "pid" / "samba-dcerpcd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def write_config(workdir, root, port):
    for name in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (workdir / name).mkdir()
    config = workdir / "smb.conf"
    config.write_text(f"""[global]
    netbios name = ETLTEST
    workgroup = WORKGROUP
    server role = standalone server
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    disable netbios = yes
    server min protocol = SMB2_02
    passdb backend = tdbsam:{workdir / 'private' / 'passdb.tdb'}
    private dir = {workdir / 'private'}
    lock directory = {workdir / 'lock'}
    state directory = {workdir / 'state'}
    cache directory = {workdir / 'cache'}
    pid directory = {workdir / 'pid'}
    ncalrpc dir = {workdir / 'ncalrpc'}
    log file = {workdir / 'smbd.log'}
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    map to guest = never
    usershare max shares = 0

[{SHARE}]
    path = {root}
    valid users = {USER}
    force user = {USER}
    read only = no
""")
    return config


def start_smbd():
    smbd = require_binary("/usr/sbin/smbd")
    smbpasswd = require_binary("smbpasswd")
    ensure_system_user(USER, PASSWORD)
    account = pwd.getpwnam(USER)
    workdir = Path(tempfile.mkdtemp(prefix="etl-smbd-"))
    os.chmod(workdir, 0o755)
    root = workdir / "share"
    root.mkdir()
    os.chown(root, account.pw_uid, account.pw_gid)
    # Owned by root, so the forced share user may read the first and not even enter the second.
    (root / "readonly").mkdir(mode=0o755)
    (root / "readonly" / "notice.txt").write_text("read me\n")
    (root / "locked").mkdir()
    os.chmod(root / "locked", 0o700)
    port = free_port()
    config = write_config(workdir, root, port)
    subprocess.run([smbpasswd, "-c", str(config), "-s", "-a", USER], input=f"{PASSWORD}\n{PASSWORD}\n", text=True,
                   check=True, capture_output=True)
    # --no-process-group because a session leader cannot setsid(); the new session keeps smbd's own
    # process-group kill on shutdown away from ours.
    process = subprocess.Popen([smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(config)],
                               stdout=open(workdir / "smbd.out", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    wait_for_port(port, process)
    return SmbServer(host="127.0.0.1", port=port, username=USER, password=PASSWORD, share=SHARE, root=root,
                     readonly_folder="readonly", locked_folder="locked", process=process, workdir=workdir)
