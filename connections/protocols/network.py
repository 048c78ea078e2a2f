"""Turning low-level network failures into messages that say which step failed."""
import errno
import socket

from connections.protocols.base import ConnectorError


def describe_network_error(exc, host, port):
    """A ConnectorError for a failure to reach host:port, named by what a user can act on."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return ConnectorError(f"Name resolution failed: the host name {host!r} is not known", retryable=True,
                              step="name resolution")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ConnectorError(f"Timed out connecting to {where}", retryable=True, step="timeout")
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return ConnectorError(f"Connection refused by {where}: nothing is listening there", retryable=True,
                              step="refused")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectorError(f"{where} is unreachable from this server", retryable=True, step="unreachable")
    return ConnectorError(f"Could not connect to {where}: {exc}", retryable=True, step="connect")


def open_socket(host, port, timeout):
    try:
        return socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise describe_network_error(exc, host, port) from None
