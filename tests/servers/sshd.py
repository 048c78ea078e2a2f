"""OpenSSH's sshd on 127.0.0.1 with a throwaway host key, a test user with a password and a key, and a user CA
it trusts (TrustedUserCAKeys): a key it signs logs in with its certificate alone, never listed in authorized_keys."""
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers.common import ensure_system_user, free_port, require_binary, stop_process, wait_for_port

USER = "etl_ssh_test"
PASSWORD = "Sftp-test-Pa55word!"


@dataclass
class SshServer:
    host: str
    port: int
    username: str
    password: str
    private_key: str  # OpenSSH ed25519, no passphrase
    host_public_key: str  # "ssh-ed25519 AAAA..."
    root: Path  # a folder the user owns; tests deliver under it
    process: subprocess.Popen = None
    workdir: Path = None
    user_ca: Path = None  # the private key of the CA the server trusts for user certificates

    def certify(self, public_key, key_id, principals=None, validity=None, ca=None):
        """Sign the public key file `public_key` with `ca` (default the trusted user CA) as `ssh-keygen -s` does
        for a company's users; returns the certificate's one line (ssh-ed25519-cert-v01@openssh.com ...).
        `principals` default to the test user; `validity` is ssh-keygen's -V (none: valid forever)."""
        command = ["ssh-keygen", "-q", "-s", str(ca or self.user_ca), "-I", key_id,
                   "-n", ",".join(principals or [self.username])]
        if validity:
            command += ["-V", validity]
        subprocess.run(command + [str(public_key)], check=True, capture_output=True)
        return Path(str(public_key).removesuffix(".pub") + "-cert.pub").read_text()

    def make_folder(self, name):
        """A fresh folder under `root` that the test user can write to."""
        folder = self.root / name
        folder.mkdir(parents=True)
        account = pwd.getpwnam(self.username)
        os.chown(folder, account.pw_uid, account.pw_gid)
        return folder

    def stop(self):
        stop_process(self.process)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_sshd():
    sshd = require_binary("/usr/sbin/sshd")
    require_binary("ssh-keygen")
    ensure_system_user(USER, PASSWORD)
    account = pwd.getpwnam(USER)
    workdir = Path(tempfile.mkdtemp(prefix="etl-sshd-"))
    os.chmod(workdir, 0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "etl-test", "-f", str(workdir / "user_key")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "etl-test-user-ca", "-f",
                    str(workdir / "user_ca")], check=True)
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "user_key.pub").read_text())
    authorized.chmod(0o644)
    root = workdir / "sftp-root"
    root.mkdir()
    os.chown(root, account.pw_uid, account.pw_gid)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir / 'host_key'}
PidFile {workdir / 'sshd.pid'}
AuthorizedKeysFile {authorized}
TrustedUserCAKeys {workdir / 'user_ca.pub'}
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {USER}
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(workdir / "sshd.log", "wb"), start_new_session=True)
    wait_for_port(port, process)
    return SshServer(
        host="127.0.0.1", port=port, username=USER, password=PASSWORD,
        private_key=(workdir / "user_key").read_text(),
        host_public_key=" ".join((workdir / "host_key.pub").read_text().split()[:2]),
        root=root, process=process, workdir=workdir, user_ca=workdir / "user_ca",
    )
