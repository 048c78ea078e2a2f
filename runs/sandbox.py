"""The sandbox every user script (a task's source or processing step) runs in, made with bubblewrap.

A task's script is written by anyone with the code permission, and the portal decrypts every organization's
secrets, so the script must not run with the portal's rights. Inside the sandbox it sees:
- the system read-only (`/` bound read-only); nothing it writes outside its folder lands anywhere;
- its run folder read-write, and its own environment plus the base Python that environment points at
  read-only, each at its real path;
- nothing of ETL_DATA_DIR beyond those (no Fernet key, no database, no other run, no cached texts), nor of
  the portal's code folder, /home, root's home or the portal user's home: empty folders lie over them;
- a private /tmp of its own (HOME is /tmp/home), removed after the run; its own /proc and a minimal /dev.

It never runs as root. When the portal does, bwrap starts as root (only root can reach a base Python under
/root, mode 700, to bind it) and `setpriv` switches to the unprivileged account ETL_SANDBOX_USER
(`etl-sandbox`, created by scripts/system-deps.sh) with no capabilities before the script starts; the run
folder is handed to that account first. bwrap's user namespace alone would not do: root mapped to another
uid keeps root's access to files. Otherwise bwrap runs as the portal's user in a user namespace. bwrap sets
no_new_privs, so setuid programs do not raise anyone's rights.

Every process it starts dies with it: the script runs in a PID namespace whose init is bwrap's child, so when
the script exits, or the portal kills bwrap (cancel, timeout), the kernel kills whatever is left in the
namespace, `setsid` and double forks included; --die-with-parent ties the sandbox to the portal's worker.

Why bubblewrap: a Debian package (`bubblewrap`), no daemon, namespaces set up from a single exec in a few
milliseconds, and used for this job by Flatpak. A script that cannot be sandboxed (bwrap missing, the
account missing, namespaces refused) fails with a message saying why; it never runs unsandboxed.
"""
import contextlib
import os
import pwd
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from runs.errors import PipelineError

DEBIAN_PACKAGE = "bubblewrap"
DEFAULT_USER = "etl-sandbox"
HOME = "/tmp/home"
ENV = "/usr/bin/env"
# Folders bwrap creates inside a hidden (empty) folder to reach a bound one: passable, not listable.
PASSAGE_MODE = "0711"


def _setting(name, default):
    """A sandbox setting from etl_portal/settings.py (ETL_SANDBOX_BWRAP, ETL_SANDBOX_USER); blank means the default."""
    return getattr(settings, name, None) or default


def bwrap_binary():
    configured = _setting("ETL_SANDBOX_BWRAP", "bwrap")
    found = shutil.which(configured)
    if not found:
        raise PipelineError(
            f"The script was not run: scripts run in a sandbox made with bubblewrap, and {configured} is not "
            f"installed on the portal's server. Install the Debian package {DEBIAN_PACKAGE} "
            "(scripts/system-deps.sh does it when run as root)", step="sandbox")
    return found


def account():
    """(uid, gid, name) of the account the script runs as when the portal runs as root; None otherwise
    (bwrap then runs as the portal's own, unprivileged user)."""
    if os.geteuid() != 0:
        return None
    name = _setting("ETL_SANDBOX_USER", DEFAULT_USER)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PipelineError(
            f"The script was not run: the portal runs as root, scripts never do, and the unprivileged account "
            f"{name} they run as does not exist. Create it with scripts/system-deps.sh (as root)",
            step="sandbox") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PipelineError(f"The script was not run: the sandbox account {name} is root; scripts never run as "
                            "root", step="sandbox")
    return entry.pw_uid, entry.pw_gid, name


def _setpriv():
    found = shutil.which("setpriv")
    if not found:
        raise PipelineError("The script was not run: setpriv (Debian package util-linux) is missing, so the "
                            "sandbox cannot switch to its unprivileged account", step="sandbox")
    return found


def _real(path):
    return Path(os.path.realpath(path))


def hidden_folders():
    """Folders the script must not see into; the ones that exist on this machine."""
    candidates = [settings.ETL_DATA_DIR, getattr(settings, "BASE_DIR", None), "/root", "/home", "/var/tmp",
                  "/run/secrets", os.path.expanduser("~"), pwd.getpwuid(os.getuid()).pw_dir]
    found = []
    for candidate in candidates:
        if not candidate:
            continue
        path = _real(candidate)
        # Never an ancestor of /tmp (or / itself): the private /tmp and the system must stay in place.
        if path.is_dir() and not Path("/tmp").is_relative_to(path) and path not in found:
            found.append(path)
    return found


def python_folders(environment):
    """The base Python the environment's interpreter points at (uv's relocatable venvs link to it)."""
    interpreter = _real(Path(environment) / "bin" / "python")
    return {_real(sys.base_prefix), _real(sys.base_exec_prefix), interpreter.parent.parent}


def bwrap_arguments(folder, readable, private_tmp, user=None):
    """bwrap's options (everything before the command) for a script in `folder` that also reads the folders
    `readable` (its environment, the base Python); `user` is account() (None: bwrap runs unprivileged)."""
    folder = _real(folder)
    hidden = [path for path in hidden_folders() if path != Path("/tmp")]
    hidden = [path for path in hidden
              if not any(other != path and path.is_relative_to(other) for other in hidden + [Path("/tmp")])]
    # What it reads only needs binding where a hidden folder covers it; elsewhere `/` shows it already.
    needed = [path for path in {_real(path) for path in readable}
              if any(path.is_relative_to(other) for other in hidden + [Path("/tmp")])]
    mounts = [("--tmpfs", None, path) for path in hidden] + [("--bind", Path(private_tmp), Path("/tmp"))]
    mounts += [("--ro-bind", path, path) for path in sorted(set(needed))]
    mounts.append(("--bind", folder, folder))
    mounts.sort(key=lambda mount: mount[2].parts)  # a folder's mount before what is mounted inside it

    arguments = ["--ro-bind", "/", "/"]
    synthetic, made = [], set()  # folders whose content bwrap makes up: what's beneath must be made too
    for kind, source, target in mounts:
        cover = max((path for path in synthetic if target.is_relative_to(path) and target != path),
                    key=lambda path: len(path.parts), default=None)
        if cover is not None:
            for between in reversed(target.parents):
                if between.is_relative_to(cover) and between != cover and between not in made:
                    arguments += ["--perms", PASSAGE_MODE, "--dir", str(between)]
                    made.add(between)
        if kind == "--tmpfs":
            arguments += ["--perms", PASSAGE_MODE, "--tmpfs", str(target)]
            synthetic.append(target)
        else:
            arguments += [kind, str(source), str(target)]
            if target == Path("/tmp"):
                synthetic.append(target)
    arguments += ["--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                  "--new-session", "--chdir", str(folder)]
    if user is None:
        arguments.insert(0, "--unshare-user")  # unprivileged: bwrap needs its own user namespace
    return arguments


@contextlib.contextmanager
def prepared(folder, environment):
    """Make the sandbox for one script run; yields `wrap(command) -> command run inside it`."""
    bwrap = bwrap_binary()
    user = account()
    setpriv = _setpriv() if user else None
    private_tmp = Path(tempfile.mkdtemp(prefix="etl-sandbox-tmp-"))
    try:
        home = private_tmp / Path(HOME).name
        home.mkdir(mode=0o700)
        if user:
            uid, gid, _name = user
            for path in (private_tmp, home):
                os.chown(path, uid, gid)
            hand_over(folder, uid, gid)
        arguments = bwrap_arguments(folder, python_folders(environment) | {_real(environment)}, private_tmp, user)

        def wrap(command):
            # bwrap always sets PWD; the script sees only the variables the portal gives it.
            command = [ENV, "-u", "PWD", *command]
            if user:
                # Inside the namespaces, before the script: the unprivileged account, without any capability.
                command = [setpriv, f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups",
                           "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command]
            return [bwrap, *arguments, "--", *command]

        yield wrap
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)


def hand_over(folder, uid, gid):
    """Give the run folder's tree to the sandbox account so the script can write there. Links are changed,
    never followed: a link a script left must not hand it the file it points at."""
    folder = _real(folder)
    os.lchown(folder, uid, gid)
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            os.lchown(os.path.join(root, name), uid, gid)


def failed_to_start(outcome):
    """bwrap's (or setpriv's) own complaint when the sandbox could not be made, else None."""
    lines = [line for line in outcome.stderr_tail if line.strip()]
    if outcome.returncode and not outcome.last_line and lines \
            and all(line.startswith(("bwrap: ", "setpriv: ")) for line in lines):
        return " ".join(lines[-3:])
    return None


def disarm(folder, warn):
    """Remove what a script may leave in its folder to trick the portal, which reads the folder with its own
    rights after the script: links to anything outside the folder, FIFOs, sockets and device files."""
    root = _real(folder)
    removed = []
    for parent, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(parent, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                if _real(path).is_relative_to(root):
                    continue
            elif stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                continue
            os.unlink(path)
            removed.append(os.path.relpath(path, root))
    if removed:
        shown = ", ".join(sorted(removed)[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        warn(f"Removed what the script left in the run folder that points outside it or is not a file: {shown}")
