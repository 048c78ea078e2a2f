"""Notifications: emails (and SMS through email gateways) after a run ends.

Each Notification row of the task is for one event (success, warning, error) with its own recipients,
subject and message (parameters allowed). The error and warning emails carry the reason and the run's
log; an email can attach the output files or embed a small CSV as a table, within a size limit (a file
over it is left out with a note in the email and the run log). A recipient written as a phone gateway
address (local part all digits, optionally with +) gets a short plain-text message, never an attachment.

Besides its own emails, a task sends each outcome's email to the mailbox its levels set (`error_recipients`
and `error_smtp_connection`, ... at the task, project or organization: tasks/inheritance.py), with the
default subject and message; a task's own email without a mail connection goes through that outcome's.

Test mode (the task's, or ETL_EMAIL_TEST_ADDRESS for a whole staging install) sends every email to the
test address instead: one email per original recipient, that address in front of the subject, no CC/BCC.
`notify` never raises: a mail problem is logged on the run and never changes its outcome.

Every email links back to its run (ETL_BASE_URL, etl_portal/links.py), and so does a text message, at its end
and within its 160 characters (`sms_text`: the link kept whole, the text before it shortened). Per email:
`attach_log` attaches the run's log as a text file; `skip_when_empty` sends nothing when the run wrote no data
rows. Late and missed alerts (alerts/deadlines.py) go to the task's "when late or missed" emails through
`send_alert_email`, which the outbox (alerts/outbox.py) calls and retries outside any run.

Secrets (runs/masking.py): the subject, the bodies, the SMS text and the attachments' *names* are masked
with the run's masker, as a recipient is a person reading text, like a page; the attachments' content is
the delivered data and goes as it is.
"""
import csv
import html
import io
import json
import logging
import re
import traceback
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.template.defaultfilters import filesizeformat as _filesizeformat
from django.utils.timezone import localtime

from connections.models import Connection
from connections.protocols import MAIL, ConnectorError
from etl_portal.links import run_url, task_url
from runs import archive
from runs.parameters import project_zone, render, resolve
from tasks.models import Notification

logger = logging.getLogger(__name__)

EVENT_OF_STATUS = {"succeeded": "success", "warning": "warning", "failed": "error"}
PHONE = re.compile(r"^\+?\d+$")
SMS_LENGTH = 160
LOG_LINES_IN_EMAIL = 400
TEXT_SUFFIXES = (".csv", ".txt", ".tsv", ".psv")
DEFAULT_SUBJECT = {"success": "{task}: succeeded", "warning": "{task}: finished with a warning",
                   "error": "{task}: FAILED"}


def notify(run):
    """Send the task's notifications for the run's final status. Never raises; returns what was sent."""
    try:
        event = EVENT_OF_STATUS.get(run.status)
        if event is None:
            return []
        notifications = list(run.task.notifications.filter(event=event).select_related("smtp_connection"))
        notifications += shared_mailbox(run.task, event)
        if not notifications:
            return []
        params = _params(run)
        sent = []
        empty = output_is_empty(run)
        for notification in notifications:
            if notification.skip_when_empty and empty:
                run.log(f"The {event} email to {notification.recipients.strip()[:80]} was not sent: the output is "
                        f"empty")
                continue
            try:
                sent += send_notification(run, notification, event, params)
            except ConnectorError as exc:
                run.log(f"The {event} email could not be sent: {_scrub(run, exc.message)}", level="warning")
            except Exception as exc:  # a bug in one notification must not stop the others, nor the worker
                # The traceback, masked: its last line quotes the exception, which may hold a subject or secret.
                logger.error("Notification %s of run %s failed:\n%s", notification.pk, run.pk,
                             _scrub(run, "".join(traceback.format_exception(exc))))
                run.log(f"The {event} email could not be sent: {type(exc).__name__}: {_scrub(run, exc)}",
                        level="warning")
        return sent
    except Exception:
        logger.exception("Notifications of run %s failed", getattr(run, "pk", None))
        return []


def shared_mailbox(task, event):
    """The outcome's mailbox the task's levels set, as an unsaved Notification (nothing when its recipients are
    not set, or set to none)."""
    recipients = task.effective(f"{event}_recipients")
    if not addresses(recipients):
        return []
    return [Notification(task=task, event=event, recipients=recipients,
                         smtp_connection=task.effective(f"{event}_smtp_connection"))]


def output_is_empty(run):
    """No data rows: the row count says so, or (a run that counts no rows, such as a file copy) every file it
    produced is empty."""
    rows = type(run).objects.filter(pk=run.pk).values_list("rows", flat=True).first()  # a stage writes it there
    if rows is not None:
        return rows == 0
    return not any(run_file.size for run_file in run.files.all() if not run_file.name.endswith(".md5"))


def _params(run):
    try:
        return resolve(run.task, run)
    except ConnectorError:
        return {"task": run.task.name, "project": run.task.project.name, "run_id": run.pk}


def _scrub(run, text):
    return run.masker(text)


def _render(text, params):
    try:
        return render(text, params, strict=False)
    except ConnectorError:
        return text


def filesizeformat(size):
    return _filesizeformat(size).replace("\xa0", " ")  # plain spaces in emails and logs


def addresses(text):
    seen = []
    for address in re.split(r"[\s,;]+", text or ""):
        if address and "@" in address and address not in seen:
            seen.append(address)
    return seen


def is_phone_gateway(address):
    return bool(PHONE.match(address.rsplit("@", 1)[0]))


def mailer_for(notification, task):
    connection = notification.smtp_connection or task.effective(f"{notification.event}_smtp_connection")
    if connection is None:
        candidates = list(Connection.objects.filter(organization=task.project.organization_id).with_capability(MAIL)[:2])
        if len(candidates) != 1:
            raise ConnectorError("Choose the mail (SMTP) connection this email is sent through", step="settings")
        connection = candidates[0]
    mailer = connection.connector()
    if MAIL not in mailer.capabilities:
        raise ConnectorError(f"{connection.name} is not a mail (SMTP) connection", step="settings")
    return mailer


def test_address(task):
    """(test mode on?, the address every email goes to instead)."""
    global_address = getattr(settings, "ETL_EMAIL_TEST_ADDRESS", "") or ""
    if task.test_mode:
        return True, task.test_email or global_address
    return bool(global_address), global_address


# --- building the messages ------------------------------------------------------------------------

def send_notification(run, notification, event, params):
    task = run.task
    mailer = mailer_for(notification, task)
    to, cc, bcc = addresses(notification.recipients), addresses(notification.cc), addresses(notification.bcc)
    subject = _scrub(run, _render(notification.subject or DEFAULT_SUBJECT[event], params))
    test_mode, test_to = test_address(task)
    if test_mode and not test_to:
        raise ConnectorError("Test mode is on but no test address is set: nothing was sent", step="settings")
    if not (to or cc or bcc):
        raise ConnectorError("The email has no recipients", step="settings")
    email_to, email_cc, email_bcc = ([a for a in group if not is_phone_gateway(a)] for group in (to, cc, bcc))
    phones = [address for address in to + cc + bcc if is_phone_gateway(address)]
    notes = []
    needs_full = test_mode or email_to or email_cc or email_bcc
    full = build_email(run, notification, event, subject, params, notes) if needs_full else None
    outgoing = []  # (message, description for the log)
    if test_mode:
        for recipient in to:
            message = sms_message(run, notification, params) if is_phone_gateway(recipient) else _copy(full)
            _address(message, [test_to], subject=f"[{recipient}] {message['Subject'] or ''}".strip())
            outgoing.append((message, recipient))
    else:
        if full is not None:
            _address(full, email_to, cc=email_cc, bcc=email_bcc)
            outgoing.append((full, ", ".join(email_to)))
        if phones:
            message = sms_message(run, notification, params)
            _address(message, phones)
            outgoing.append((message, ", ".join(phones)))
    if outgoing:
        with mailer.open() as server:
            for message, _ in outgoing:
                mailer.send(message, server)
    for note in notes:
        run.log(note, level="warning")
    if test_mode:
        dropped = " (CC and BCC dropped)" if cc or bcc else ""
        run.log(f"Test mode: sent {len(outgoing)} {event} email(s) to {test_to} instead of "
                f"{', '.join(to) or 'nobody'}{dropped}")
    else:
        parts = []
        if full is not None:
            parts.append(f"Sent the {event} email to {', '.join(email_to) or '(cc/bcc only)'}"
                         + (f"; cc {', '.join(email_cc)}" if email_cc else "")
                         + (f"; {len(email_bcc)} bcc" if email_bcc else ""))
        if phones:
            parts.append(f"Sent a text message to {', '.join(phones)}")
        run.log("; ".join(parts))
    return [message for message, _ in outgoing]


def _address(message, to, cc=(), bcc=(), subject=None):
    for header in ("To", "Cc", "Bcc"):
        del message[header]
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)  # smtplib sends to these and strips the header
    if subject is not None:
        del message["Subject"]
        message["Subject"] = subject
    del message["Message-ID"]
    message["Message-ID"] = make_msgid(domain="etl-portal")


def _copy(message):
    from copy import deepcopy

    return deepcopy(message)


def _new_message(subject):
    message = EmailMessage()
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    return message


def sms_message(run, notification, params):
    """Plain text only, short: the configured message, or the task and its outcome."""
    text = _render(notification.message, params).strip() if notification.message else ""
    if not text:
        text = f"{run.task.name}: {run.get_status_display().lower()} (run {run.pk})"
        if run.error and run.status != "succeeded":
            text += f" - {run.error}"
    text = " ".join(_scrub(run, text).split())
    message = _new_message(f"{run.task.name}: {run.get_status_display()}"[:60])
    message.set_content(sms_text(text, run_url(run.pk)))
    return message


def sms_text(text, link=""):
    """`text` (already masked) and then `link`, within SMS_LENGTH characters: the link is kept whole and the text
    before it shortened (ending in …) to make room; a link that would not fit even alone is left out. The link
    is the portal's own address (ETL_BASE_URL) and a page's path: it holds no secret, so it is not masked (a
    masked link would not open)."""
    if not settings.ETL_BASE_URL or len(link) > SMS_LENGTH:
        link = ""
    room = SMS_LENGTH - (len(link) + 1 if link else 0)
    if len(text) > room:
        text = text[:room - 1].rstrip() + "…" if room > 1 else ""
    return f"{text} {link}".strip() if link else text


def build_email(run, notification, event, subject, params, notes):
    message = _new_message(subject)
    files = [run_file for run_file in run.files.all() if not run_file.name.endswith(".md5")]
    text = [_render(notification.message, params).strip()] if notification.message else []
    text.append(summary(run, files))
    if event in ("error", "warning"):
        text.append(("Error: " if event == "error" else "Warning: ") + (run.error or "(no message)"))
        text.append(log_text(run))
    html_tables = []
    attachments = []
    if notification.include_output == "attach":
        attachments = choose_attachments(files, notification.max_attachment_bytes, notes)
    elif notification.include_output == "embed":
        html_tables = embed_tables(run.task, files, notification.max_attachment_bytes, notes)
    body = "\n\n".join(part for part in text if part)
    if notes:
        body += "\n\nNote: " + "\nNote: ".join(notes)
    body = _scrub(run, body)  # before HTML escaping, which would hide a secret holding & < > or quotes
    message.set_content(body)
    if html_tables:
        paragraphs = "".join(f"<p>{html.escape(part)}</p>".replace("\n", "<br>") for part in body.split("\n\n"))
        message.add_alternative(f"<html><body>{paragraphs}{''.join(html_tables)}</body></html>", subtype="html")
    if notification.attach_manifest and run.files.exists():
        manifest = json.dumps(run.manifest(), indent=2).encode()
        message.add_attachment(manifest, maintype="application", subtype="json",
                               filename=f"run-{run.pk}-manifest.json")
    for run_file in attachments:
        with archive.open_file(run_file.stored_path) as handle:
            data = handle.read()
        maintype, subtype = content_type(run_file.name)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=run_file.display_name)
    if notification.attach_log:
        # Log lines are masked when written (Run.log); masked again here like every text of an email.
        message.add_attachment(_scrub(run, full_log_text(run)).encode(), maintype="text", subtype="plain",
                               filename=f"run-{run.pk}.log")
    return message


def summary(run, files):
    task = run.task
    try:
        scheduled = run.scheduled_for.astimezone(project_zone(task))
    except ConnectorError:
        scheduled = localtime(run.scheduled_for)
    lines = [f"Task: {task.name} (project {task.project.name})",
             f"Run: #{run.pk}, {run.get_status_display().lower()}, for {scheduled:%Y-%m-%d %H:%M %Z}",
             f"Open: {run_url(run.pk)}"]
    if run.started_at and run.finished_at:
        lines.append(f"Ran: {localtime(run.started_at):%Y-%m-%d %H:%M:%S} to {localtime(run.finished_at):%H:%M:%S}")
    if run.rows is not None:
        lines.append(f"Rows: {run.rows:,}")
    for run_file in files:
        where = ", ".join(f"{d.get('connection')}:{d.get('path')}" for d in run_file.deliveries or []) or "kept only"
        lines.append(f"File: {run_file.name} ({run_file.size:,} bytes, md5 {run_file.md5}) -> {where}")
    return "\n".join(lines)


def log_text(run):
    lines = list(run.log_lines.order_by("-id")[:LOG_LINES_IN_EMAIL])[::-1]
    total = run.log_lines.count()
    head = f"Log (last {len(lines)} of {total} lines):" if total > len(lines) else "Log:"
    return head + "\n" + "\n".join(f"{localtime(line.created_at):%H:%M:%S} {line.level:<7} {line.message}"
                                   for line in lines)


def full_log_text(run):
    return "\n".join(f"{localtime(line.created_at):%Y-%m-%d %H:%M:%S} {line.level:<7} {line.message}"
                     for line in run.log_lines.all()) + "\n"


def choose_attachments(files, limit, notes):
    chosen, total = [], 0
    for run_file in files:
        if not run_file.is_available:
            notes.append(f"{run_file.name} was not attached: the file is no longer kept")
        elif total + run_file.size > limit:
            notes.append(f"{run_file.name} ({filesizeformat(run_file.size)}) was not attached: the attachments "
                         f"would exceed the {filesizeformat(limit)} limit")
        else:
            chosen.append(run_file)
            total += run_file.size
    return chosen


def embed_tables(task, files, limit, notes):
    tables = []
    for run_file in files:
        if not run_file.name.lower().endswith(TEXT_SUFFIXES):
            notes.append(f"{run_file.name} was not embedded: only a CSV or text file can be shown as a table")
        elif run_file.size > limit:
            notes.append(f"{run_file.name} ({filesizeformat(run_file.size)}) was not embedded: it is over the "
                         f"{filesizeformat(limit)} limit")
        elif not run_file.is_available:
            notes.append(f"{run_file.name} was not embedded: the file is no longer kept")
        else:
            tables.append(csv_table(task, run_file))
    return tables


def csv_table(task, run_file):
    encoding = task.encoding or "utf-8"
    with archive.open_file(run_file.stored_path) as handle:
        text = handle.read().decode("utf-8-sig" if encoding.startswith("utf-8") else encoding, errors="replace")
    delimiter = (task.csv_delimiter or ",").replace("\\t", "\t")
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter[0]))
    parts = [f'<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">'
             f"<caption>{html.escape(run_file.display_name)}</caption>"]
    for index, row in enumerate(rows):
        cell = "th" if index == 0 and task.include_headers else "td"
        parts.append("<tr>" + "".join(f"<{cell}>{html.escape(value).replace(chr(10), '<br>')}</{cell}>"
                                      for value in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def content_type(name):
    import mimetypes

    guessed, _ = mimetypes.guess_type(name)
    if name.lower().endswith(".gpg"):
        guessed = "application/pgp-encrypted"
    maintype, _, subtype = (guessed or "application/octet-stream").partition("/")
    return maintype, subtype


# --- late and missed alerts -------------------------------------------------------------------------------

def send_alert_email(alert, notification):
    """Send one "when late or missed" email of the task about `alert`; raises ConnectorError when it cannot
    (the outbox records the attempt and retries). Phone gateways get the one-line text."""
    task = alert.task
    mailer = mailer_for(notification, task)
    to, cc, bcc = addresses(notification.recipients), addresses(notification.cc), addresses(notification.bcc)
    if not (to or cc or bcc):
        raise ConnectorError("The email has no recipients", step="settings")
    test_mode, test_to = test_address(task)
    if test_mode and not test_to:
        raise ConnectorError("Test mode is on but no test address is set: nothing was sent", step="settings")
    run = alert.run
    scrub = run.masker if run is not None else (lambda text: text)
    subject = scrub(f"{task.name}: {alert.get_kind_display().lower()}")
    link = run_url(run.pk) if run is not None else task_url(task.pk)
    lines = [alert.message, f"Task: {task.name} (project {task.project.name})"]
    if run is not None:
        lines.append(f"Run: #{run.pk}, {run.get_status_display().lower()}")
    lines.append(f"Open: {link}")
    body = scrub("\n".join(lines))
    outgoing = []
    if test_mode:
        groups = [([test_to], (), (), f"[{', '.join(to) or 'nobody'}] {subject}")]
    else:
        groups = [([a for a in to if not is_phone_gateway(a)], [a for a in cc if not is_phone_gateway(a)],
                   [a for a in bcc if not is_phone_gateway(a)], subject)]
        phones = [a for a in to + cc + bcc if is_phone_gateway(a)]
        if phones:
            groups.append((phones, (), (), None))
    for recipients, copy_to, blind, title in groups:
        if not (recipients or copy_to or blind):
            continue
        if title is None:  # a text message: one short line
            message = _new_message(subject[:60])
            message.set_content(sms_text(" ".join(scrub(f"{task.name}: {alert.message}").split()), link))
        else:
            message = _new_message(title)
            message.set_content(body)
        _address(message, recipients, cc=copy_to, bcc=blind)
        outgoing.append(message)
    with mailer.open() as server:
        for message in outgoing:
            mailer.send(message, server)
    return outgoing
