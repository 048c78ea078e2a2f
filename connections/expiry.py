"""Credential expiry: what stops working when, and reminders before it does.

A connection's dates come from two places: `secret_expires_on`, typed by a person (a vendor's SFTP password
that must change every 90 days), and `found_expiries`, read by the connection's last successful test (the TLS
certificate of an FTPS, SMTP or https server, a GPG key's expiry; connections/protocols/base.py
`note_certificate`). The dashboard lists what expires within 30 days (`expiring_for`); the daily system job
*Remind of expiring credentials* (`send_reminders`) emails the organization's admins once at 30, 7 and 1
day(s) before each date, through the organization's mail connection.
"""
import datetime
from dataclasses import dataclass

from django.utils import timezone

from connections.models import Connection
from connections.protocols import MAIL, ConnectorError

REMIND_DAYS = (30, 7, 1)
SOON_DAYS = 30


@dataclass(frozen=True)
class Expiry:
    connection: Connection
    what: str
    expires_on: datetime.date

    @property
    def key(self):
        return f"{self.what}|{self.expires_on.isoformat()}"

    def days_left(self, today=None):
        return (self.expires_on - (today or timezone.localdate())).days


def expiries_of(connection):
    """Every known expiry date of one connection, soonest first."""
    found = []
    if connection.secret_expires_on:
        found.append(Expiry(connection, "password or key (as entered)", connection.secret_expires_on))
    for item in connection.found_expiries or []:
        try:
            found.append(Expiry(connection, item["what"], datetime.date.fromisoformat(item["expires_on"])))
        except (KeyError, TypeError, ValueError):
            continue  # a record from an older format: the next test writes it again
    return sorted(found, key=lambda expiry: expiry.expires_on)


def expiring(connections, within_days=SOON_DAYS, today=None):
    """The expiries of `connections` that fall within `within_days` (or have passed), soonest first."""
    today = today or timezone.localdate()
    limit = today + datetime.timedelta(days=within_days)
    candidates = connections.exclude(secret_expires_on__isnull=True, found_expiries=[])
    return sorted((expiry for connection in candidates for expiry in expiries_of(connection)
                   if expiry.expires_on <= limit), key=lambda expiry: expiry.expires_on)


def expiring_for(user, within_days=SOON_DAYS):
    """The dashboard's list: what expires soon among the connections the user may see."""
    return expiring(Connection.objects.visible_to(user).select_related("organization"), within_days)


def send_reminders(today=None):
    """Email each organization's admins about credentials expiring in 30, 7 or 1 day(s), once per threshold
    (a day the job did not run is made up the next day with the nearest threshold). Returns a summary."""
    from projects.models import Membership, Role

    today = today or timezone.localdate()
    sent, unsent = 0, []
    for expiry in expiring(Connection.objects.select_related("organization"), max(REMIND_DAYS), today):
        connection = expiry.connection
        days = expiry.days_left(today)
        due = [threshold for threshold in REMIND_DAYS if days <= threshold]
        done = set((connection.expiry_reminders or {}).get(expiry.key, []))
        if not due or min(due) in done:
            continue
        admins = sorted(Membership.objects.filter(organization=connection.organization_id, role=Role.ADMIN)
                        .exclude(user__email="").values_list("user__email", flat=True))
        try:
            _mail(connection, admins, _message(expiry, days))
        except ConnectorError as exc:
            unsent.append(f"{connection.name}: {exc.message}")
            continue
        reminders = dict(connection.expiry_reminders or {})
        reminders[expiry.key] = sorted(done | set(due))  # the larger thresholds passed meanwhile count as sent
        Connection.objects.filter(pk=connection.pk).update(expiry_reminders=reminders)
        connection.expiry_reminders = reminders
        sent += 1
    summary = f"{sent} expiry reminder(s) sent"
    return summary + (f"; not sent: {'; '.join(unsent)}" if unsent else "")


def _message(expiry, days):
    when = "has expired" if days < 0 else ("expires today" if days == 0 else
                                         f"expires in {days} day{'s' if days != 1 else ''}")
    subject = f"{expiry.connection.name}: {expiry.what} {when} ({expiry.expires_on:%Y-%m-%d})"
    body = (f"The {expiry.what} of the connection {expiry.connection.name} ({expiry.connection.kind_label}) "
            f"{when}, on {expiry.expires_on:%Y-%m-%d}.\n\nRenew it and update the connection in the portal before "
            "then, or the runs that use it will fail.")
    return subject, body


def _mail(connection, recipients, message):
    """Through the organization's mail connection (the first by name), as the task emails go."""
    from email.message import EmailMessage

    if not recipients:
        raise ConnectorError("the organization has no admin with an email address", step="settings")
    mail = (Connection.objects.filter(organization=connection.organization_id).with_capability(MAIL)
            .order_by("name").first())
    if mail is None:
        raise ConnectorError("the organization has no mail (SMTP) connection to send reminders through",
                             step="settings")
    mailer = mail.connector()
    subject, body = message
    email = EmailMessage()
    email["Subject"], email["To"] = subject, ", ".join(recipients)  # From: the connection's sender address
    email.set_content(body)
    with mailer.open() as server:
        mailer.send(email, server)
