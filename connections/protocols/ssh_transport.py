"""An authenticated paramiko Transport with the host key pinned: shared by SFTP and SSH."""
import base64
import hashlib
import io

import paramiko

from connections.protocols.base import ConnectorError
from connections.protocols.network import open_socket

KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def fingerprint(key):
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_private_key(text, passphrase):
    last_error = None
    for cls in KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise ConnectorError("The private key is encrypted: enter its passphrase", step="authentication") from None
        except (paramiko.SSHException, ValueError) as exc:
            last_error = exc
    raise ConnectorError(
        "The private key could not be read (wrong passphrase, or not an OpenSSH/PEM RSA, ECDSA or Ed25519 key)",
        step="authentication",
    ) from (None if last_error else None)


def check_host_key(connection, key):
    """Pin the key on first use; refuse any later connection that presents another key."""
    offered = f"{key.get_name()} {key.get_base64()}"
    if not connection.host_key:
        connection.host_key = offered
        if connection.pk:
            type(connection).objects.filter(pk=connection.pk, host_key="").update(host_key=offered)
        return
    if connection.host_key.strip() != offered:
        raise ConnectorError(
            f"The server's host key has changed (it now offers {key.get_name()} {fingerprint(key)}). This can mean "
            "someone is intercepting the connection. If the server was reinstalled, clear the pinned host key on the "
            "connection to accept the new one.",
            step="host key",
        )


def _prefer_ciphers(transport, preferred):
    options = transport.get_security_options()
    supported = [name for name in preferred if name in options.ciphers]
    options.ciphers = tuple(supported) + tuple(name for name in options.ciphers if name not in supported)


def _handshake_timeout(host, port, timeout):
    return ConnectorError(f"{host}:{port} accepted the connection but did not complete the SSH handshake within "
                          f"{timeout:g} seconds", retryable=True, step="timeout")


def open_transport(connector, *, preferred_ciphers=()):
    """`preferred_ciphers` are moved to the front of the offer (never restricting it), for bulk transfers."""
    connection = connector.connection
    host, port = connection.host, connection.port or 22
    if not host:
        raise ConnectorError("No host is set", step="settings")
    sock = open_socket(host, port, connector.timeout)
    transport = paramiko.Transport(sock)
    if preferred_ciphers:
        _prefer_ciphers(transport, preferred_ciphers)
    transport.banner_timeout = connector.timeout
    transport.auth_timeout = connector.timeout
    try:
        transport.start_client(timeout=connector.timeout)
        if not transport.initial_kex_done:  # start_client returns quietly when its time is up
            raise TimeoutError
        check_host_key(connection, transport.get_remote_server_key())
        username = connection.username
        if connector.secret("private_key"):
            key = load_private_key(connector.secret("private_key"), connector.secret("passphrase"))
            transport.auth_publickey(username, key)
        elif connector.secret("password"):
            transport.auth_password(username, connector.secret("password"))
        else:
            raise ConnectorError("Set a password or a private key", step="authentication")
        transport.set_keepalive(30)
        return transport
    except paramiko.AuthenticationException:
        transport.close()
        raise ConnectorError(f"Authentication failed for user {username!r}", step="authentication") from None
    except paramiko.SSHException as exc:
        transport.close()
        if isinstance(exc.__context__, TimeoutError):  # paramiko wraps a missing banner's timeout
            raise _handshake_timeout(host, port, connector.timeout) from None
        raise ConnectorError(connector.scrub(f"SSH negotiation with {host}:{port} failed: {exc}"), retryable=True,
                             step="connect") from None
    except TimeoutError:
        transport.close()
        raise _handshake_timeout(host, port, connector.timeout) from None
    except (OSError, EOFError) as exc:
        transport.close()
        raise ConnectorError(f"Connection to {host}:{port} dropped: {exc or type(exc).__name__}", retryable=True,
                             step="connect") from None
    except BaseException:
        transport.close()
        raise
