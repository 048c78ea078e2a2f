"""Pipelined SFTP reads and writes straight on the channel, in constant memory.

paramiko's own put sends 32 KiB requests (each just over one SSH packet, so two) and drains the whole
pipeline whenever a reply is waiting; its get queues every read of the file at once and keeps whatever
arrives early in memory. Uploads end up CPU-bound at about half of OpenSSH's speed. Here each request
carries up to 128 KiB (256 KiB for writes) as the server allows (OpenSSH's "limits@openssh.com"
extension; otherwise 32 KiB, which every server accepts), a fixed number of bytes stays in flight, and
each reply is read as its slot is needed. A write carries as much data as fills whole SSH packets:
paramiko splits a request into packets of the channel's maximum size, and a last packet holding a few
bytes costs as much CPU as a full one. Handles are opened and closed through paramiko; stray replies left
by a failed transfer are skipped by paramiko's reader, and our request ids start far above its counter
so they never collide.
"""
import contextlib
import errno
import itertools
import os
import struct

from paramiko.sftp import CMD_DATA, CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_READ, CMD_STATUS, CMD_WRITE

SAFE_CHUNK = 32 * 1024
LARGEST_CHUNK = 128 * 1024
LARGEST_WRITE = 256 * 1024
IN_FLIGHT_BYTES = 8 * 1024 * 1024
# paramiko keeps this much of each packet for the channel message around the data.
PACKET_MARGIN = 64
STATUS_OK, STATUS_EOF, STATUS_NO_SUCH_FILE, STATUS_PERMISSION_DENIED = 0, 1, 2, 3


def _string(data):
    return struct.pack(">I", len(data)) + data


class SftpPipe:
    """Raw requests and replies on an SFTP client's channel; the caller keeps paramiko out of it meanwhile."""

    def __init__(self, sftp):
        self.sftp = sftp
        self.channel = sftp.get_channel()
        self._ids = itertools.count(0x40000000)
        self.read_chunk, self.write_limit = self._chunk_sizes()

    def send(self, kind, payload):
        request_id = next(self._ids)
        self.channel.sendall(struct.pack(">IBI", len(payload) + 5, kind, request_id) + payload)
        return request_id

    def receive(self):
        """(kind, request id, body after the id) of the next reply."""
        size, = struct.unpack(">I", self._receive_exactly(4))
        packet = self._receive_exactly(size)
        kind, request_id = struct.unpack_from(">BI", packet)
        return kind, request_id, memoryview(packet)[5:]

    def _receive_exactly(self, size):
        first = self.channel.recv(size)
        if len(first) == size:
            return first
        buffer = bytearray(first)
        while len(buffer) < size:
            if not first:
                raise EOFError("the server closed the SFTP channel")
            first = self.channel.recv(size - len(buffer))
            buffer += first
        return bytes(buffer)

    def _chunk_sizes(self):
        request_id = self.send(CMD_EXTENDED, _string(b"limits@openssh.com"))
        kind, reply_id, body = self.receive()
        while reply_id != request_id:
            kind, reply_id, body = self.receive()
        if kind != CMD_EXTENDED_REPLY or len(body) < 32:
            return SAFE_CHUNK, SAFE_CHUNK
        _packet, max_read, max_write, _handles = struct.unpack_from(">QQQQ", body)
        # Zero means "no limit"; the write limit already leaves room for the request's own header.
        return min(max_read or LARGEST_CHUNK, LARGEST_CHUNK), min(max_write or LARGEST_WRITE, LARGEST_WRITE)

    def write_chunk(self, handle):
        """Data bytes per write request: within the server's limit, filling whole SSH packets."""
        header = 4 + 1 + 4 + len(handle) + 8 + 4  # length, type, id, handle string, offset, data length
        per_packet = self.channel.out_max_packet_size - PACKET_MARGIN
        packets = (self.write_limit + header) // per_packet
        return packets * per_packet - header if packets else self.write_limit


def status_error(body, path):
    """The OSError paramiko would raise for a failed STATUS reply, so callers map both alike."""
    code, = struct.unpack_from(">I", body)
    text_length, = struct.unpack_from(">I", body, 4) if len(body) >= 8 else (0,)
    text = bytes(body[8:8 + text_length]).decode("utf-8", "replace") or f"SFTP status {code}"
    if code == STATUS_NO_SUCH_FILE:
        return FileNotFoundError(errno.ENOENT, text, path)
    if code == STATUS_PERMISSION_DENIED:
        return PermissionError(errno.EACCES, text, path)
    return OSError(text)


def upload(pipe, local_path, remote_path):
    """Write `local_path` to `remote_path` (created or truncated); return the number of bytes sent."""
    remote = pipe.sftp.open(remote_path, "wb")
    handle = _string(remote.handle)
    chunk = pipe.write_chunk(handle)
    depth = max(2, IN_FLIGHT_BYTES // chunk)
    pending = {}  # request id -> offset
    sent = 0
    try:
        with open(local_path, "rb", buffering=0) as source:
            while True:
                data = source.read(chunk)
                if not data:
                    break
                # One buffer per request: a separate header would cost an SSH packet of its own.
                pending[pipe.send(CMD_WRITE, handle + struct.pack(">QI", sent, len(data)) + data)] = sent
                sent += len(data)
                while len(pending) >= depth:
                    _expect_ok(pipe, pending, remote_path)
        while pending:
            _expect_ok(pipe, pending, remote_path)
    except BaseException:
        _close_quietly(remote)
        raise
    remote.close()  # some servers report a failed write only here
    return sent


def _close_quietly(remote):
    """After a failure: paramiko's reader skips the replies it left unread; an error here would hide the first."""
    with contextlib.suppress(Exception):
        remote.close()


def _next_reply(pipe, pending):
    """The next reply to one of `pending` (removed from it); older replies a failed transfer left are skipped."""
    while True:
        kind, reply_id, body = pipe.receive()
        if reply_id in pending:
            return kind, body, pending.pop(reply_id)


def _expect_ok(pipe, pending, path):
    kind, body, _ = _next_reply(pipe, pending)
    if kind != CMD_STATUS:
        raise OSError(f"unexpected SFTP reply type {kind} to a write")
    if struct.unpack_from(">I", body)[0] != STATUS_OK:
        raise status_error(body, path)


def download(pipe, remote_path, local_path, size):
    """Read the first `size` bytes of `remote_path` into `local_path`; return the number received."""
    depth = max(2, IN_FLIGHT_BYTES // pipe.read_chunk)
    remote = pipe.sftp.open(remote_path, "rb")
    handle = _string(remote.handle)
    pending = {}  # request id -> (offset, length)
    next_offset = received = 0
    ended = False
    try:
        with open(local_path, "wb") as target:
            def request(offset, length):
                request_id = pipe.send(CMD_READ, handle + struct.pack(">QI", offset, length))
                pending[request_id] = (offset, length)

            while True:
                while not ended and next_offset < size and len(pending) < depth:
                    length = min(pipe.read_chunk, size - next_offset)
                    request(next_offset, length)
                    next_offset += length
                if not pending:
                    break
                kind, body, (offset, length) = _next_reply(pipe, pending)
                if kind == CMD_STATUS:
                    if struct.unpack_from(">I", body)[0] != STATUS_EOF:
                        raise status_error(body, remote_path)
                    ended = True  # the file is shorter than it was; the caller's size check reports it
                    continue
                if kind != CMD_DATA:
                    raise OSError(f"unexpected SFTP reply {kind} to a read")
                data_length, = struct.unpack_from(">I", body)
                os.pwrite(target.fileno(), body[4:4 + data_length], offset)
                received += data_length
                if 0 < data_length < length:
                    # Servers may answer with less than asked; ask again for the rest.
                    request(offset + data_length, length - data_length)
    except BaseException:
        _close_quietly(remote)
        raise
    remote.close()
    return received
