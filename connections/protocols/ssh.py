"""Running a command on a server over SSH, its output streamed line by line as it arrives."""
import re
import select
import shlex
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from connections.protocols.base import SHELL, Connector, ConnectorError
from connections.protocols.registry import register
from connections.protocols.ssh_transport import OpenSshLogin, open_transport

# How long one wait for output lasts; also how quickly a stop request or a timeout is noticed.
POLL_SECONDS = 0.1
READ_BYTES = 32768
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class LineSplitter:
    """Bytes of one stream in, whole decoded lines out; a partial line waits for its newline."""

    def __init__(self, name, on_line):
        self.name = name
        self.on_line = on_line
        self.pending = b""

    def feed(self, data):
        # Split bytes, not text, so a multi-byte character cut between two reads still decodes.
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self._emit(line)

    def flush(self):
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line):
        self.on_line(self.name, line.removesuffix(b"\r").decode("utf-8", errors="replace"))


def with_environment(command, env):
    """Prefix `command` with exports: servers rarely accept SSH "env" requests (sshd's AcceptEnv)."""
    if not env:
        return command
    for name in env:
        if not ENV_NAME.match(str(name)):
            raise ConnectorError(f"{name!r} is not a valid environment variable name", step="settings")
    exports = " ".join(f"{name}={shlex.quote(str(value))}" for name, value in env.items())
    return f"export {exports}; {command}"


def signal_remote(channel, name="TERM"):
    """Ask sshd to signal the command (RFC 4254 "signal", OpenSSH 7.9+); silently ignored elsewhere.

    Closing the channel alone would leave a hung command running on the server until it writes.
    paramiko has no public call for this request; this is how its own Channel methods send theirs.
    """
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    try:
        channel.transport._send_user_message(message)
    except (paramiko.SSHException, OSError, EOFError):
        pass


@register
class SshShell(OpenSshLogin, Connector):
    kind = "ssh"
    label = "SSH (run commands)"
    capabilities = frozenset({SHELL})
    fields = ("host", "port", "username")
    default_port = 22

    def run(self, command, on_line, timeout=None, env=None, stop=None):
        """Run `command`; call on_line("stdout"|"stderr", text) for each line; return the exit status.

        A non-zero status is returned, not raised: the caller decides what it means. -1 means the
        server reported no status (the command was killed by a signal). `timeout` (seconds) stops a
        command that runs too long; setting the threading.Event `stop` cancels it.
        """
        transport = open_transport(self)
        try:
            try:
                channel = transport.open_session(timeout=self.timeout)
                channel.exec_command(with_environment(command, env))
                # No input is ever sent: a command reading stdin gets end-of-file instead of waiting forever.
                channel.shutdown_write()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise ConnectorError(self.scrub(f"The server refused to run the command: {exc or type(exc).__name__}"),
                                     step="command") from None
            return self._pump(channel, on_line, timeout, stop)
        finally:
            transport.close()

    def _pump(self, channel, on_line, timeout, stop):
        streams = {"stdout": LineSplitter("stdout", on_line), "stderr": LineSplitter("stderr", on_line)}
        deadline = time.monotonic() + float(timeout) if timeout else None
        while True:
            if stop is not None and stop.is_set():
                self._abandon(channel)
                raise ConnectorError("Cancelled", step="command")
            if deadline is not None and time.monotonic() >= deadline:
                self._abandon(channel)
                raise ConnectorError(f"The command did not finish within {float(timeout):g} seconds and was stopped",
                                     step="timeout")
            received = False
            while channel.recv_ready():
                streams["stdout"].feed(channel.recv(READ_BYTES))
                received = True
            while channel.recv_stderr_ready():
                streams["stderr"].feed(channel.recv_stderr(READ_BYTES))
                received = True
            if received:
                continue
            # The server sends all output before the exit status, so nothing can follow it.
            if channel.exit_status_ready() or channel.closed:
                break
            wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
            select.select([channel], [], [], wait)
        for splitter in streams.values():
            splitter.flush()
        status = channel.recv_exit_status()
        # paramiko reports -1 both for a command killed by a signal and for a connection that dropped.
        if status == -1 and not channel.get_transport().is_active():
            raise ConnectorError("The connection dropped before the command finished", retryable=True,
                                 step="command")
        return status

    @staticmethod
    def _abandon(channel):
        signal_remote(channel)
        channel.close()

    def test(self):
        lines = []
        status = self.run("echo ok", lambda stream, line: lines.append(line), timeout=max(self.timeout, 5))
        if status == 0 and "ok" in lines:
            return f"Connected to {self.connection.host} as {self.connection.username}; `echo ok` printed ok."
        raise ConnectorError(f"Connected, but `echo ok` ended with status {status} and printed {lines[:3]!r}",
                             step="command")
