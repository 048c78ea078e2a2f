"""An aiosmtpd server on 127.0.0.1 that keeps every message it receives, with optional login and TLS."""
import email
import email.policy
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers.common import free_port, require_binary

USERNAME = "mailer"
PASSWORD = "Smtp-sink-Pa55!"


@dataclass
class ReceivedMail:
    mail_from: str
    recipients: list
    message: email.message.EmailMessage


@dataclass
class SmtpSink:
    host: str
    port: int
    username: str | None
    password: str | None
    received: list = field(default_factory=list)
    refused: set = field(default_factory=set)  # recipient addresses answered with 550
    certificate: Path | None = None
    controller: Controller | None = None

    def with_subject(self, subject):
        return [mail for mail in self.received if mail.message["Subject"] == subject]

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        if self.certificate is not None:
            shutil.rmtree(self.certificate.parent, ignore_errors=True)


class _RecordingHandler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sink.username and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.sink.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        self.sink.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def self_signed_certificate(folder):
    """A throwaway certificate for 127.0.0.1 (its own issuer, so clients that verify will refuse it)."""
    openssl = require_binary("openssl")
    cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


def start_smtp_sink(username=USERNAME, password=PASSWORD, starttls=True, implicit_tls=False):
    """Start a sink; with a username every message needs a login; STARTTLS or implicit TLS on request."""
    sink = SmtpSink(host="127.0.0.1", port=free_port(), username=username, password=password)
    tls_context = None
    if starttls or implicit_tls:
        cert, key = self_signed_certificate(tempfile.mkdtemp(prefix="etl-smtp-"))
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)
        sink.certificate = cert

    def authenticator(server, session, envelope, mechanism, auth_data):
        valid = (isinstance(auth_data, LoginPassword) and auth_data.login == username.encode()
                 and auth_data.password == password.encode())
        # handled=False: let aiosmtpd answer 535 itself; handled=True would leave the client waiting.
        return AuthResult(success=valid, handled=False)

    options = {"hostname": "127.0.0.1", "port": sink.port, "server_hostname": "sink.test", "ready_timeout": 10}
    if username:
        # Tests log in over plain connections too, so AUTH must not wait for TLS. The login is enforced in
        # handle_MAIL rather than with auth_required, which warns on every connection without TLS.
        options |= {"authenticator": authenticator, "auth_require_tls": False}
    if implicit_tls:
        options["ssl_context"] = tls_context
    elif tls_context is not None:
        options["tls_context"] = tls_context
    sink.controller = Controller(_RecordingHandler(sink), **options)
    sink.controller.start()
    return sink
