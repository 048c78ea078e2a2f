"""Masking: the one place that hides a run's secret values wherever text leaves the portal's hands.

A `Masker` knows a set of secret values and replaces them with ******** in any text: log lines, a run's
error, exception text, email subjects and bodies, file names and paths shown on pages, the preview.
Which values are secret is decided elsewhere: runs/masking.py `secret_values(task)` (used by `run.masker`)
gathers every secret a run of the task can meet: the sensitive parameter values (project and task) and the
secrets of every connection the task uses (source, text, processing, GPG key, conditions, destinations, the
mail connections of its notifications). This module is plain Python, so every layer may use it.

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
