"""Parameters: project and task key/values, named dates, and the date expressions Atlas users already write.

Where values go, and how:
- names and texts (file, zip and folder names, email subjects, commands): `render` puts values in as text;
- SQL: runs/sql_parameters.py `bind_query` turns every placeholder into a bound query parameter, never
  text in the query; `display_query` shows the same query with the values written in;
- pages and logs: runs/masking.py `mask` hides sensitive values (the one masking mechanism); runs/preview.py
  shows what a run would use.

Date expressions (as in Atlas Automation Hub): any strftime code, with math after a code (`%d-1` a day
earlier, `%m+1` a month later, `%Y-1`, `%H-2`, `%U+1` weeks...), applied to the whole group of codes around
it, plus `firstday` (1), `firstday0` (01) and `lastday` (28..31) of the month the group lands in. A group
ends where a code repeats, so `%Y%m%d-1_%Y%m%d` is yesterday, then today. A parameter value uses them
inside `parse(...)`; file names use them directly. `%%` is a literal percent sign.

Strict: an unknown code (`%Q`, also inside `{name:%Q}`), a `{` that is never closed, an unknown `{name}`
and a `firstday`/`lastday` before any date code are errors (`check_text` finds them when the task is
saved), never text passed through to a vendor.

Named values: {today} {yesterday} {first_of_month} {last_of_month} {first_of_last_month}
{last_of_last_month} {now} {run_id} {task} {project}, and every user parameter by its key, each with an
optional format: {yesterday:%Y%m%d}. Dates are those of the project's time zone at the run's scheduled
time; a retry uses its first attempt's time, so yesterday's file keeps yesterday's name.
"""
import calendar
import datetime
import re
import zoneinfo

from django.utils import timezone

from runs.errors import PipelineError
from runs.files import safe_name

NAMED_DATES = ("today", "yesterday", "first_of_month", "last_of_month", "first_of_last_month",
               "last_of_last_month")
PREVIEW_RUN_ID = "<run id>"

UNIT_OF_CODE = {}
for _letters, _unit in (("aAwdjue", "days"), ("UWV", "weeks"), ("bBmh", "months"), ("yYG", "years"),
                        ("HIkl", "hours"), ("M", "minutes"), ("S", "seconds"), ("f", "microseconds")):
    UNIT_OF_CODE.update(dict.fromkeys(_letters, _unit))

DATE_CODE = re.compile(r"%([A-Za-z%])([+-]\d+)?")
# The strftime codes a name may use (Python's documented ones and the usual C library ones); any other
# letter after % is a typing mistake and is refused, never written out as it is.
KNOWN_CODES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuVeklhDFTRsCgPr")
MONTH_WORD = re.compile(r"firstday0|firstday|lastday")
# A `{name` or `{name:format` that never closes (the text ends, or another `{` opens first).
UNCLOSED = re.compile(r"(?<!\$)\{[@$#&]?[A-Za-z_][\w.\-]*(?::[^{}]*)?(?=\{|$)")
PARSE_CALL = re.compile(r"parse\((.*?)\)", re.IGNORECASE)
# {name} or {name:format}; `${name}` is shell syntax and stays as it is.
PLACEHOLDER = re.compile(r"(?<!\$)\{(?P<name>[@$#&]?[A-Za-z_][\w.\-]*)(?::(?P<format>[^{}]*))?\}")
SIGILS = "@$#&:"


class ParameterError(PipelineError):
    """A parameter or date expression that cannot be worked out: the user must fix the text."""

    def __init__(self, message):
        super().__init__(message, step="settings")


# --- the moment a run stands for -----------------------------------------------------------------

def project_zone(task):
    name = (task.project.time_zone or "UTC").strip()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ParameterError(f"The project's time zone {name!r} is unknown: use a name like Europe/London") from None


def original_schedule(run):
    """The time a run stands for: a retry keeps its first attempt's scheduled time."""
    first = run.first_attempt if run.first_attempt_id else None
    return (first or run).scheduled_for


def run_moment(task, run=None, when=None):
    """The run's time in the project's zone: `when` (preview), else the run's original schedule, else now."""
    zone = project_zone(task)
    if when is None:
        base = original_schedule(run) if run is not None else timezone.now()
        return base.astimezone(zone)
    if isinstance(when, str):
        when = parse_when(when)
    if not isinstance(when, datetime.datetime):  # a date: that day, at the current time of day
        when = datetime.datetime.combine(when, timezone.now().astimezone(zone).time().replace(microsecond=0))
    if timezone.is_naive(when):
        return when.replace(tzinfo=zone)
    return when.astimezone(zone)


def parse_when(text):
    try:
        return datetime.datetime.fromisoformat(text.strip()) if "T" in text or " " in text.strip() \
            else datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(f"{text!r} is not a date: use YYYY-MM-DD") from None


# --- date math ------------------------------------------------------------------------------------

def shift(moment, years=0, months=0, weeks=0, days=0, hours=0, minutes=0, seconds=0, microseconds=0):
    """Calendar units move the wall clock (a month from Jan 31 is Feb 28/29); clock units move real time."""
    shifted = moment
    try:
        if years or months or weeks or days:
            local = moment.replace(tzinfo=None)
            year, month = divmod(local.year * 12 + local.month - 1 + years * 12 + months, 12)
            local = local.replace(year=year, month=month + 1,
                                  day=min(local.day, calendar.monthrange(year, month + 1)[1]))
            shifted = (local + datetime.timedelta(weeks=weeks, days=days)).replace(tzinfo=moment.tzinfo, fold=0)
        clock = datetime.timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=microseconds)
        if clock:
            shifted = (shifted.astimezone(datetime.timezone.utc) + clock).astimezone(moment.tzinfo)
    except (ValueError, OverflowError):
        raise ParameterError("The date math goes outside the years 1 to 9999") from None
    return shifted


def check_codes(text, where="The text"):
    """Refuse an unknown `%` code (a typo must not reach a vendor's folder as `%Q`)."""
    for match in DATE_CODE.finditer(text or ""):
        letter = match.group(1)
        if letter != "%" and letter not in KNOWN_CODES:
            raise ParameterError(f"{where} has the unknown date code %{letter} in {text!r}: use codes such as "
                                 "%Y %m %d %H %M %S, and %% for a percent sign")


def _check_words(text):
    """`firstday`/`lastday` only mean something after a date code (`%Y%m-1lastday`)."""
    first_code = next((match.start() for match in DATE_CODE.finditer(text) if match.group(1) != "%"), len(text))
    word = MONTH_WORD.search(text, 0, first_code)
    if word:
        raise ParameterError(f"{word.group()!r} in {text!r} does not follow a date code: write it after the "
                             f"month's codes, as in %Y%m-1{word.group()}")


def _groups(text):
    """Split `text` where a date code repeats (Atlas' rule), keeping every character."""
    starts, seen = [0], set()
    for match in DATE_CODE.finditer(text):
        letter = match.group(1)
        if letter == "%":
            continue
        if letter in seen:
            starts.append(match.start())
            seen = set()
        seen.add(letter)
    return [text[start:end] for start, end in zip(starts, starts[1:] + [len(text)])]


def _expand_group(text, moment):
    offsets = {}
    for match in DATE_CODE.finditer(text):
        unit = UNIT_OF_CODE.get(match.group(1))
        if match.group(2) and unit and unit not in offsets:  # the first offset of a unit counts, as in Atlas
            offsets[unit] = int(match.group(2))
    landed = shift(moment, **offsets)
    last_day = str(calendar.monthrange(landed.year, landed.month)[1])
    words = {"firstday0": "01", "firstday": "1", "lastday": last_day}
    out, position = [], 0
    for match in DATE_CODE.finditer(text):
        out.append(MONTH_WORD.sub(lambda word: words[word.group()], text[position:match.start()]))
        letter = match.group(1)
        out.append("%" if letter == "%" else landed.strftime("%" + letter))
        position = match.end()
    out.append(MONTH_WORD.sub(lambda word: words[word.group()], text[position:]))
    return "".join(out)


def expand_dates(text, moment):
    """Put the date codes of `text` in for `moment` (see the module docstring)."""
    if not text or ("%" not in text and "day" not in text):
        return text or ""
    check_codes(text)
    _check_words(text)
    return "".join(_expand_group(group, moment) for group in _groups(text))


# --- values ---------------------------------------------------------------------------------------

def named_values(task, run, moment):
    today = moment.date()
    first_of_month = today.replace(day=1)
    last_of_last_month = first_of_month - datetime.timedelta(days=1)
    return {
        "today": today,
        "yesterday": today - datetime.timedelta(days=1),
        "first_of_month": first_of_month,
        "last_of_month": today.replace(day=calendar.monthrange(today.year, today.month)[1]),
        "first_of_last_month": last_of_last_month.replace(day=1),
        "last_of_last_month": last_of_last_month,
        "now": moment,
        "run_id": run.pk if run is not None and run.pk else PREVIEW_RUN_ID,
        "task": task.name,
        "project": task.project.name,
    }


def stored_parameters(task):
    """(key, raw value, sensitive, "organization"/"project"/"task"): the organization's rows, overridden by the
    project's, overridden by the task's (the nearest level wins)."""
    rows = {}
    for parameter in task.project.organization.parameters.all():
        rows[parameter.key] = (parameter.key, parameter.value, parameter.sensitive, "organization")
    for parameter in task.project.parameters.all():
        rows[parameter.key] = (parameter.key, parameter.value, parameter.sensitive, "project")
    if task.pk:
        for parameter in task.parameters.all():
            rows[parameter.key] = (parameter.key, parameter.value, parameter.sensitive, "task")
    return list(rows.values())


def evaluate(value, named, moment):
    """A stored value as used: `parse(...)` date expressions worked out, named values put in."""
    text = PARSE_CALL.sub(lambda match: expand_dates(match.group(1), moment), value or "")
    return render(text, named, strict=False, dates=False)


def resolve(task, run=None, when=None):
    """Every parameter of a run: named values, then organization values overridden by the project's, then by
    the task's.

    Date values are `datetime.date` (str() gives YYYY-MM-DD); `now` is the aware moment itself.
    """
    moment = run_moment(task, run, when)
    named = named_values(task, run, moment)
    values = dict(named)
    for key, raw, sensitive, _origin in stored_parameters(task):
        # A secret is used exactly as typed: a password may well contain "%d" or braces.
        values[key] = raw if sensitive else evaluate(raw, named, moment)
    return values


def sensitive_values(task):
    return [raw for _key, raw, sensitive, _origin in stored_parameters(task) if sensitive and raw]


def value_text(value, format_spec=None):
    """One value as text: dates ISO (or in `format_spec`), other values as str or format()."""
    if format_spec:
        if not isinstance(value, (datetime.date, datetime.datetime)):
            value = _as_date(value)
        if isinstance(value, (datetime.date, datetime.datetime)):
            check_codes(format_spec, "The format")
            return value.strftime(format_spec)
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            raise ParameterError(f"The format {format_spec!r} does not apply to the value {value!r}") from None
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return "" if value is None else str(value)


def _as_date(value):
    text = str(value).strip()
    for parse in (datetime.date.fromisoformat, datetime.datetime.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return value


def lookup(params, name):
    """The value of `{name}`: exact key, else the key written with a sigil (`{start}` finds `@start`)."""
    if name in params:
        return True, params[name]
    for sigil in SIGILS:
        if sigil + name in params:
            return True, params[sigil + name]
    return False, None


def _sigil_keys(params):
    keys = sorted((key for key in params if key and key[0] in SIGILS and len(key) > 1), key=len, reverse=True)
    return re.compile("|".join(re.escape(key) + r"(?![\w])" for key in keys)) if keys else None


def _moment_of(params, when):
    if isinstance(when, datetime.datetime):
        return when
    now = params.get("now")
    return now if isinstance(now, datetime.datetime) else timezone.now()


def render(text, params=None, when=None, strict=True, dates=True):
    """Put parameters and date codes into a name or text.

    `{name}` / `{name:format}` take a named value or parameter; a key written like a variable (`@start`,
    `$region`) is also replaced where it appears bare, as Atlas did; strftime codes use the run's time.
    An unknown `{name}` is an error when `strict` (a misspelt name must not reach a vendor's folder).
    `dates=False` leaves strftime codes alone (stored values use them only inside parse(...)).
    """
    if not text:
        return ""
    check_braces(text)
    params = params or {}
    moment = _moment_of(params, when)
    literal = (lambda part: expand_dates(part, moment)) if dates else (lambda part: part)
    sigil_keys = _sigil_keys(params)
    pattern = PLACEHOLDER if sigil_keys is None else re.compile(f"{PLACEHOLDER.pattern}|(?P<bare>{sigil_keys.pattern})")
    out, position = [], 0
    for match in pattern.finditer(text):
        if match.groupdict().get("bare"):
            replacement = value_text(params[match.group("bare")])
        else:
            found, value = lookup(params, match.group("name"))
            if not found:
                if strict:
                    raise ParameterError(unknown_message(match.group("name"), params))
                continue
            replacement = value_text(value, match.group("format"))
        out.append(literal(text[position:match.start()]))
        out.append(replacement)
        position = match.end()
    out.append(literal(text[position:]))
    return "".join(out)


def known_names(project, task=None, posted=None):
    """The `{name}`s a task's texts may use: the named values, the project's and the task's parameters
    (with `posted`, the task form's data, the parameters being saved with it)."""
    names = set(NAMED_DATES) | {"now", "run_id", "task", "project"}
    if project is not None:
        names |= set(project.parameters.values_list("key", flat=True))
        names |= set(project.organization.parameters.values_list("key", flat=True))
    if task is not None and task.pk:
        names |= set(task.parameters.values_list("key", flat=True))
    for field, value in (posted or {}).items():
        if re.fullmatch(r"parameters-\d+-key", field) and value:
            names.add(value.strip())
    return names


def check_braces(text):
    unclosed = UNCLOSED.search(text or "")
    if unclosed:
        raise ParameterError(f"{unclosed.group()!r} in {text!r} is not closed: end it with }}")


def check_text(text, names=None):
    """The errors a run would meet in `text` (a file, folder or zip name...), found when the task is saved:
    unclosed braces, unknown date codes (in the text and in `{name:format}`), misplaced firstday/lastday,
    and, when `names` are given, unknown `{name}`s. Raises ParameterError."""
    if not text:
        return
    check_braces(text)
    literal, position = [], 0
    for match in PLACEHOLDER.finditer(text):
        literal.append(text[position:match.start()])
        position = match.end()
        name, format_spec = match.group("name"), match.group("format")
        if names is not None and not lookup(dict.fromkeys(names), name)[0]:
            raise ParameterError(unknown_message(name, dict.fromkeys(names)))
        if format_spec and "%" in format_spec:
            check_codes(format_spec, "The format")
    literal.append(text[position:])
    for part in literal:
        if "%" in part or "day" in part:
            check_codes(part)
            _check_words(part)


def unknown_message(name, params):
    known = ", ".join("{%s}" % key for key in params if not key.startswith("_"))
    return f"Unknown parameter {{{name}}}: the names available are {known}"


# --- SQL (bound by runs/sql_parameters.py) ----------------------------------------------------------

def paramstyle_for(database):
    """The placeholder style a Database connector declares (`Database.paramstyle`: psycopg wants %s, sqlite3
    and pyodbc want ?)."""
    return getattr(database, "paramstyle", None) or "qmark"


def zip_file_name(task, params):
    """The archive's name: the task's zip name with parameters, else the task's name; always ends .zip."""
    name = render(task.zip_name, params).strip() or safe_name(task.name)
    if "/" in name or "\\" in name:
        raise ParameterError(f"The zip name {name!r} may not contain a folder")
    return name if name.lower().endswith(".zip") else f"{name}.zip"
