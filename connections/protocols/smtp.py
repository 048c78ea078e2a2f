"""Sending mail through an SMTP server: plain, STARTTLS or implicit TLS, with an optional login."""
import contextlib
import smtplib
import ssl

from django import forms

from connections.protocols.base import MAIL, Connector, ConnectorError, password_secret, verify_tls_option
from connections.protocols.network import describe_network_error
from connections.protocols.registry import register
from connections.protocols.web import option_flag

SECURITY_CHOICES = ("none", "starttls", "ssl")


def _reply_text(exc):
    """The server's reply from an smtplib exception, without the status code."""
    error = getattr(exc, "smtp_error", b"")
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error or "")
    return " ".join(text.split()) or str(exc)


@register
class SmtpMail(Connector):
    kind = "smtp"
    label = "SMTP (email)"
    capabilities = frozenset({MAIL})
    fields = ("host", "port", "username")
    field_labels = {"username": "User name (blank: no login)"}
    secret_fields = {"password": password_secret()}
    option_fields = {
        "security": forms.ChoiceField(label="Connection security", required=False,
                                      choices=[("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")]),
        "from_address": forms.EmailField(label="From address", required=False),
        "verify_tls": verify_tls_option(),
    }
    harmless_options = frozenset({"from_address"})
    default_port = 25

    @classmethod
    def port_for(cls, options):
        security = str((options or {}).get("security") or "none").strip().lower()
        return {"ssl": 465, "starttls": 587}.get(security, cls.default_port)

    @property
    def security(self):
        value = (self.connection.options.get("security") or "none").strip().lower()
        if value not in SECURITY_CHOICES:
            raise ConnectorError(f"Unknown SMTP security {value!r}: use none, starttls or ssl", step="settings")
        return value

    @property
    def host(self):
        return self.connection.host or "127.0.0.1"

    @property
    def port(self):
        if self.connection.port:
            return int(self.connection.port)
        return self.port_for({"security": self.security})

    @property
    def from_address(self):
        return self.connection.options.get("from_address") or self.connection.username or ""

    def tls_context(self):
        context = ssl.create_default_context()
        if not option_flag(self.connection.options, "verify_tls"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _error(self, exc):
        where = f"{self.host}:{self.port}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return ConnectorError(f"The SMTP server rejected the login of user {self.connection.username!r}: "
                                  f"{self.scrub(_reply_text(exc))}", step="authentication")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            hint = " (it may offer it only after STARTTLS)" if self.security == "none" else ""
            return ConnectorError(f"The server at {where} does not offer login (AUTH){hint}", step="settings")
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = ", ".join(sorted(exc.recipients))
            return ConnectorError(f"The server refused every recipient: {refused}", step="mail")
        if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code == 530:
            return ConnectorError(f"The server at {where} requires a login: set the username and password",
                                  step="authentication")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return ConnectorError(f"The server refused the sender address {exc.sender!r}: "
                                  f"{self.scrub(_reply_text(exc))}", step="mail")
        if isinstance(exc, smtplib.SMTPDataError):
            return ConnectorError(f"The server refused the message: {self.scrub(_reply_text(exc))}",
                                  retryable=400 <= exc.smtp_code < 500, step="mail")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectorError(f"The TLS certificate of {self.host} could not be verified ({exc.verify_message}); "
                                  "fix the server's certificate, or turn off TLS verification only for a server "
                                  "you trust", step="connect")
        if isinstance(exc, ssl.SSLError):
            return ConnectorError(f"The TLS handshake with {where} failed ({exc.reason or exc}): check the security "
                                  "setting (none, starttls or ssl) matches the port", step="connect")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return ConnectorError(f"The SMTP server at {where} closed the connection: check the security setting "
                                  "matches the port", retryable=True, step="connect")
        if isinstance(exc, smtplib.SMTPResponseException):
            return ConnectorError(f"The SMTP server answered {exc.smtp_code}: {self.scrub(_reply_text(exc))}",
                                  retryable=400 <= exc.smtp_code < 500, step="connect")
        if isinstance(exc, OSError):
            return describe_network_error(exc, self.host, self.port)
        return ConnectorError(self.scrub(f"SMTP error with {where}: {exc}"), step="connect")

    def _connect(self):
        security = self.security
        if security == "ssl":
            server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls_context())
        else:
            server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            server.ehlo()
            if security == "starttls":
                if not server.has_extn("starttls"):
                    raise ConnectorError(f"The server at {self.host}:{self.port} does not offer STARTTLS",
                                         step="settings")
                server.starttls(context=self.tls_context())
                server.ehlo()
            if security in ("ssl", "starttls"):
                self.note_certificate(server.sock, f"TLS certificate of {self.host}")
            if self.connection.username:
                server.login(self.connection.username, self.secret("password"))
        except BaseException:
            with contextlib.suppress(Exception):
                server.close()
            raise
        return server

    @contextlib.contextmanager
    def open(self):
        """A connected, logged-in smtplib.SMTP for sending several messages; failures become ConnectorError."""
        try:
            server = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc) from None
        try:
            yield server
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc) from None
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                server.quit()
            server.close()

    def send(self, message, server=None):
        """Send an email.message.EmailMessage (its From defaults to the connection's sender address)."""
        if not message.get("From"):
            if not self.from_address:
                raise ConnectorError("Set the sender (From) address of this mail connection", step="settings")
            message["From"] = self.from_address
        if server is None:
            with self.open() as opened:
                return self.send(message, opened)
        try:
            refused = server.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc) from None
        if refused:
            raise ConnectorError(f"The message was sent, but the server refused: {', '.join(sorted(refused))}",
                                 step="mail")
        return message

    def test(self):
        with self.open() as server:
            code, _ = server.noop()
            if code != 250:
                raise ConnectorError(f"The SMTP server answered {code} to NOOP", step="connect")
        return f"Connected to {self.host}:{self.port}; the server accepts mail"

