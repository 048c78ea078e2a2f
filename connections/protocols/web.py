"""A text file fetched over HTTP(S), e.g. a query kept on an intranet page or a raw repository URL."""
import errno
import posixpath
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import requests

from django import forms

from connections.protocols.base import TEXT, Connector, ConnectorError, Secret, verify_tls_option
from connections.protocols.network import describe_network_error
from connections.protocols.registry import register

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
CHUNK_SIZE = 64 * 1024


def option_flag(options, name, default=True):
    """A yes/no option that may arrive from a form as a string."""
    value = options.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def host_and_port(url):
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or url, port or (443 if parts.scheme == "https" else 80)


def _causes(exc):
    """The exception and everything it wraps (requests -> urllib3 -> socket), outermost first."""
    seen, pending = [], [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return seen


def describe_request_error(exc, url, timeout, scrub):
    """A ConnectorError for a requests failure reaching `url`, named by the step that failed."""
    host, port = host_and_port(url)
    causes = _causes(exc)
    if any(isinstance(cause, (ssl.SSLCertVerificationError, requests.exceptions.SSLError)) for cause in causes):
        return ConnectorError(scrub(f"The TLS certificate of {host} could not be verified; fix the server's "
                                    "certificate, or turn off TLS verification only for a server you trust"),
                              step="connect")
    for cause in causes:
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return describe_network_error(socket.gaierror(), host, port)
        if isinstance(cause, OSError) and cause.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH):
            return describe_network_error(cause, host, port)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectorError(f"Timed out connecting to {host}:{port}", retryable=True, step="timeout")
    # A read timeout while streaming the body arrives wrapped in a plain ConnectionError.
    if any(isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__ for cause in causes):
        unit = "second" if timeout == 1 else "seconds"
        return ConnectorError(f"{host}:{port} did not answer within {timeout:g} {unit}", retryable=True,
                              step="timeout")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return ConnectorError(scrub(f"{url!r} is not a valid http(s) URL"), step="settings")
    return ConnectorError(scrub(f"Could not fetch from {host}:{port}: {exc}"), retryable=True, step="connect")


def decode_text(data, encoding, source):
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ConnectorError(f"{source} is not {encoding} text", step="fetch") from None


@register
class WebText(Connector):
    kind = "web"
    label = "Web (URL)"
    capabilities = frozenset({TEXT})
    caches_text = True
    fields = ("path",)
    field_labels = {"path": "URL"}
    secret_fields = {"token": Secret("Access token")}
    option_fields = {
        "token_header": forms.CharField(label="Token header", required=False,
                                        help_text="HTTP header that carries the token, e.g. PRIVATE-TOKEN"),
        "max_bytes": forms.IntegerField(label="Largest accepted size (bytes)", required=False, min_value=1),
        "verify_tls": verify_tls_option(),
    }
    harmless_options = frozenset({"token_header", "max_bytes"})

    @property
    def url(self):
        return (self.connection.path or "").strip()

    @property
    def max_bytes(self):
        return int(self.connection.options.get("max_bytes") or DEFAULT_MAX_BYTES)

    def headers(self):
        token = self.secret("token")
        if not token:
            return {}
        header = (self.connection.options.get("token_header") or "Authorization").strip()
        return {header: f"Bearer {token}" if header.lower() == "authorization" else token}

    def _note_server_certificate(self):
        """An https server's certificate expiry, read on a connection of its own (requests does not expose the
        socket it verified); verification is the fetch's business, so none here."""
        url = urlsplit(self.url)
        if url.scheme != "https" or not url.hostname:
            return
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with socket.create_connection((url.hostname, url.port or 443), timeout=self.timeout) as raw:
                with context.wrap_socket(raw, server_hostname=url.hostname) as tls:
                    self.note_certificate(tls, f"TLS certificate of {url.hostname}")
        except OSError:
            pass  # the fetch that follows says what is wrong with the server

    def fetch_bytes(self):
        url = self.url
        if not url.lower().startswith(("http://", "https://")):
            raise ConnectorError("The URL must start with http:// or https://", step="settings")
        try:
            with requests.get(url, headers=self.headers(), timeout=(self.timeout, self.timeout), stream=True,
                              verify=option_flag(self.connection.options, "verify_tls")) as response:
                self._check_status(response)
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > self.max_bytes:
                    raise self._too_large()
                chunks, received = [], 0
                for chunk in response.iter_content(CHUNK_SIZE):
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise self._too_large()
                    chunks.append(chunk)
                return b"".join(chunks), self._encoding(response)
        except requests.RequestException as exc:
            raise describe_request_error(exc, url, self.timeout, self.scrub) from None

    def fetch_text(self):
        data, encoding = self.fetch_bytes()
        return decode_text(data, encoding, self.scrub(self.url))

    def fetch_text_files(self, path, target_dir, *, what="text", folder=False, script=False):
        """The connection holds a base URL and `path` the file under it (or a whole URL); blank: the base URL
        itself. A URL is one file: `folder` does not apply."""
        web = self
        extra = (path or "").strip()
        if extra:
            import copy
            from urllib.parse import urljoin

            connection = copy.copy(self.connection)
            connection.path = urljoin(self.url.rstrip("/") + "/", extra)
            web = type(self)(connection)
        data, _ = web.fetch_bytes()
        name = posixpath.basename(urlsplit(web.url).path) or "text"
        if script and not name.endswith(".py"):
            name = "script.py"
        (Path(target_dir) / name).write_bytes(data)
        return name

    def _check_status(self, response):
        status = response.status_code
        if 200 <= status < 300:
            return
        where = self.scrub(self.url)
        if status in (401, 403):
            hint = "the token was rejected" if self.secret("token") else "it needs a token"
            raise ConnectorError(f"The server refused access to {where} (HTTP {status}): {hint}",
                                 step="authentication")
        if status == 404:
            raise ConnectorError(f"Nothing found at {where} (HTTP 404)", step="fetch")
        raise ConnectorError(f"The server answered HTTP {status} {response.reason or ''}".rstrip() + f" for {where}",
                             retryable=status >= 500 or status == 429, step="fetch")

    def _too_large(self):
        return ConnectorError(f"The response is larger than the {self.max_bytes} byte limit", step="fetch")

    @staticmethod
    def _encoding(response):
        # requests assumes ISO-8859-1 for text/* without a charset; files fetched here are UTF-8 far more often.
        if "charset=" in (response.headers.get("Content-Type") or "").lower() and response.encoding:
            return response.encoding
        return "utf-8-sig"

    def test(self):
        self._note_server_certificate()
        data, encoding = self.fetch_bytes()
        text = decode_text(data, encoding, self.scrub(self.url))
        return f"Fetched {len(data)} bytes ({len(text.splitlines())} lines) from {self.scrub(self.url)}"
