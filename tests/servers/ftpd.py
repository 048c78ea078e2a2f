"""pyftpdlib in a subprocess on 127.0.0.1: plain FTP and explicit TLS on one port, and a "legacy" port.

The legacy port behaves like many Windows/IIS servers: no MLSD/MLST, and RNTO refuses an existing target,
so the client's fallbacks are tested against a real server too. Run as a module, this file is the server.
"""
import argparse
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "etl_ftp"
PASSWORD = "Ftp-test-Pa55word!"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class FtpServer:
    host: str
    port: int  # plain FTP, or explicit TLS after AUTH TLS
    legacy_port: int  # no MLSD, rename refuses an existing target
    username: str
    password: str
    root: Path  # the user's FTP home folder on disk
    readonly_folder: str  # may list and download, not upload
    locked_folder: str  # may not even list
    process: subprocess.Popen = None
    workdir: Path = None

    def make_folder(self, name):
        folder = self.root / name
        folder.mkdir(parents=True)
        return folder

    def stop(self):
        from tests.servers.common import stop_process

        stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def make_certificate(workdir):
    pem = workdir / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(pem), "-out", str(pem)], check=True, capture_output=True)
    return pem


def launch(workdir, root, port, legacy_port=0, throttle=0):
    """Start the server process; returns it once the main port listens."""
    from tests.servers.common import wait_for_port

    command = [sys.executable, "-m", "tests.servers.ftpd", "--root", str(root), "--port", str(port),
               "--legacy-port", str(legacy_port), "--throttle", str(throttle)]
    if (workdir / "cert.pem").exists():
        command += ["--cert", str(workdir / "cert.pem")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=open(workdir / f"ftpd-{port}.log", "wb"), start_new_session=True)
    wait_for_port(port, process)
    if legacy_port:
        wait_for_port(legacy_port, process)
    return process


def start_ftpd():
    from tests.servers.common import free_port, require_binary, unavailable

    require_binary("openssl")
    try:
        import OpenSSL  # noqa: F401
        import pyftpdlib  # noqa: F401
    except ImportError as exc:
        unavailable(f"pyftpdlib with pyOpenSSL is not installed: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="etl-ftpd-"))
    make_certificate(workdir)
    root = workdir / "home"
    root.mkdir()
    port, legacy_port = free_port(), free_port()
    process = launch(workdir, root, port, legacy_port)
    return FtpServer(host="127.0.0.1", port=port, legacy_port=legacy_port, username=USER, password=PASSWORD,
                     root=root, readonly_folder="readonly", locked_folder="locked", process=process,
                     workdir=workdir)


# --- the server process ----------------------------------------------------------------------------

def serve(args):
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    root = Path(args.root)
    for name in ("readonly", "locked"):
        (root / name).mkdir(exist_ok=True)
    (root / "readonly" / "notice.txt").write_text("read me\n")
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmw")
    authorizer.override_perm(USER, str(root / "readonly"), "elr", recursive=True)
    authorizer.override_perm(USER, str(root / "locked"), "", recursive=True)

    handler = TLS_FTPHandler if args.cert else FTPHandler

    def ftp_XSHA256(self, path):
        # What ProFTPD's mod_digest and several Windows servers answer: "250 <hex digest>" of a file, so the
        # portal's delivery proof has a server-side checksum to test against (pyftpdlib has none of its own).
        if not self.fs.isfile(self.fs.realpath(path)):
            self.respond(f"550 {self.fs.fs2ftp(path)} is not a file.")
            return
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        self.respond(f"250 {digest.hexdigest()}")

    def announce_xsha256(self, *args, **kwargs):
        handler.__init__(self, *args, **kwargs)
        self._extra_feats = [*self._extra_feats, "XSHA256"]  # listed by FEAT; set per connection by pyftpdlib

    main = type("MainHandler", (handler,), {
        "authorizer": authorizer, "auth_failed_timeout": 0, "passive_ports": range(args.port + 1, args.port + 40),
        "certfile": args.cert or None, "tls_control_required": False, "tls_data_required": False,
        "banner": "ETL Portal test FTP server",
        "proto_cmds": {**handler.proto_cmds, "XSHA256": dict(perm="r", auth=True, arg=True,
                                                             help="Syntax: XSHA256 <SP> file-name")},
        "__init__": announce_xsha256, "ftp_XSHA256": ftp_XSHA256,
    })
    if args.throttle:
        main.dtp_handler = type("SlowData", (ThrottledDTPHandler,), {"read_limit": args.throttle,
                                                                     "write_limit": args.throttle})
    servers = [FTPServer(("127.0.0.1", args.port), main)]

    if args.legacy_port:
        class RefusingRenameFS(AbstractedFS):
            def rename(self, src, dst):
                if os.path.exists(dst):
                    raise OSError(errno.EEXIST, "Cannot create a file when that file already exists")
                os.rename(src, dst)

        commands = {name: spec for name, spec in FTPHandler.proto_cmds.items() if name not in ("MLSD", "MLST")}
        legacy = type("LegacyHandler", (FTPHandler,), {
            "authorizer": authorizer, "auth_failed_timeout": 0, "proto_cmds": commands,
            "abstracted_fs": RefusingRenameFS, "passive_ports": range(args.port + 41, args.port + 80),
        })
        servers.append(FTPServer(("127.0.0.1", args.legacy_port), legacy))
    servers[0].serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--legacy-port", type=int, default=0)
    parser.add_argument("--throttle", type=int, default=0)
    parser.add_argument("--cert", default="")
    serve(parser.parse_args())
