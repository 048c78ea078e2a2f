"""Masking: the one place that hides a run's secret values wherever text leaves the portal's hands.

A `Masker` knows a set of secret values and replaces them with ******** in any text: log lines, a run's
error, exception text, email subjects and bodies, file names and paths shown on pages, the preview.
`Masker.for_task(task)` (or `run.masker`) knows every secret a run of the task can meet: the sensitive
parameter values (project and task) and the secrets of every connection the task uses (source, text,
processing, GPG key, conditions, destinations, the mail connections of its notifications).

Rules, and why:
- The whole value is masked wherever it appears, inside words too ("report_S3cret.csv").
- A value that spans lines (a private key, a certificate) is also masked line by line, because a script
  printing it, or a traceback quoting it, spreads it over several log lines: each line of the value,
  stripped of surrounding spaces, is masked wherever it appears once it has at least LINE_MIN (4)
  characters. Shorter lines (an empty line, the `==` tail of base64) are not secret enough to be worth
  garbling every log line that happens to contain them. PEM armour lines (`-----BEGIN ... KEY-----`,
  `-----END ... KEY-----`) are public text and stay readable, so a log still says *what* was printed.
- A value of fewer than SHORT_VALUE (3) characters is masked only where it stands alone, not touching a
  letter or digit: masking "42" inside "2042" would garble every number and, by which ones vanish, tell
  the value anyway. Such a value is weak as a secret; where it stands alone (`/out/42/`, `id=42`) it goes.
- Only the raw value and its lines are masked, not encodings of it (URL-quoted, JSON-escaped, base64):
  the portal never writes those itself in a log or page, and guessing every encoding a script might
  print is a losing game; scripts get secrets in the environment and must not print them.
- One regular expression, longest value first, in one pass: a value inside another is covered by the
  longer one, and the ******** written in never gets masked again.

The real values stay where they are needed: the vendor's server gets the file under its real name and
the stored RunFile.name is that name; pages show `RunFile.display_name`, which was masked when the file
was recorded (see `shown_name`) so a secret changed since is still hidden.
"""
import re

MASK = "********"
SHORT_VALUE = 3
LINE_MIN = 4
ARMOUR = re.compile(r"^-----(BEGIN|END) [A-Z0-9 ]+-----$")
_ALONE = r"(?<![A-Za-z0-9]){}(?![A-Za-z0-9])"


def pieces(value):
    """(pieces masked anywhere, pieces masked where they stand alone) of one secret value."""
    text = "" if value is None else str(value)
    if not text.strip():
        return [], []
    if len(text) < SHORT_VALUE:
        return [], [text]
    anywhere = [text]
    if "\n" in text or "\r" in text:
        for line in text.splitlines():
            line = line.strip()
            if len(line) >= LINE_MIN and not ARMOUR.match(line):
                anywhere.append(line)
    if text.strip() != text and len(text.strip()) >= SHORT_VALUE:
        anywhere.append(text.strip())  # a value pasted with a trailing newline is printed without it
    return anywhere, []


class Masker:
    """Replaces every known secret value in a text by ********. Calling it is the whole interface."""

    def __init__(self, values=()):
        anywhere, alone = set(), set()
        for value in values or ():
            found_anywhere, found_alone = pieces(value)
            anywhere.update(found_anywhere)
            alone.update(found_alone)
        alternatives = [re.escape(piece) for piece in sorted(anywhere, key=len, reverse=True)]
        alternatives += [_ALONE.format(re.escape(piece)) for piece in sorted(alone, key=len, reverse=True)]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self):
        return self._pattern is not None

    def __call__(self, text):
        """`text` (any object; None gives "") as a string with every secret replaced by ********."""
        if text is None:
            return ""
        text = str(text)
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    mask = __call__

    def __repr__(self):  # never show what it knows
        return f"<Masker {'with' if self else 'without'} secrets>"

    @classmethod
    def for_task(cls, task):
        return cls(secret_values(task))


def mask(text, task=None, values=()):
    """One-off masking: `text` with the secrets of `task` (if given) and `values` replaced by ********."""
    return Masker(list(values or ()) + (secret_values(task) if task is not None else []))(text)


def sensitive_parameter_values(task):
    from runs.parameters import sensitive_values

    return sensitive_values(task)


def _connection_lists(task):
    """Functions, each giving some of the connections a run of `task` may open or hand to a script.

    Only fields and relations are used, no model methods, so the data migration that masks older file
    names (runs 0005) can pass its historical models.
    """
    from connections.protocols import MAIL, registry

    Connection = task._meta.apps.get_model("connections", "Connection")

    def notification_connections():
        notifications = list(task.notifications.select_related("smtp_connection"))
        found = [notification.smtp_connection for notification in notifications]
        if any(notification.smtp_connection_id is None for notification in notifications):
            # Such an email goes through the organization's one mail connection (runs.notifications.mailer_for).
            found += list(Connection.objects.filter(organization=task.project.organization_id,
                                                    kind__in=registry.kinds_with(MAIL)))
        return found

    yield lambda: [task.source_connection]
    yield lambda: [task.text_connection]
    yield lambda: [task.processing_connection]
    yield lambda: [task.gpg_key]
    if task.pk:
        yield lambda: [destination.connection for destination in task.destinations.select_related("connection")]
        yield lambda: [condition.connection for condition in task.conditions.select_related("connection")]
        yield notification_connections


def _gathered(part):
    # A secret that cannot be decrypted with the configured keys cannot reach any text either: skip it
    # rather than fail, so a run with such a connection still logs why it failed.
    try:
        return list(part())
    except ValueError:
        return []


def task_connections(task):
    """Every connection a run of `task` may open or hand to a script, once each."""
    unique = {}
    for part in _connection_lists(task):
        for connection in _gathered(part):
            if connection is not None:
                unique.setdefault(connection.pk or id(connection), connection)
    return list(unique.values())


def secret_values(task):
    """Every secret value a run of `task` could meet: connection secrets and sensitive parameter values."""
    values = []
    for connection in task_connections(task):
        values.extend(_gathered(lambda: [value for value in (connection.secrets or {}).values() if value]))
    return values + _gathered(lambda: sensitive_parameter_values(task))
