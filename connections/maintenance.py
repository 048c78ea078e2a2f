"""Maintenance windows of a connection (connections.models.MaintenanceWindow): is a moment inside one, and
until when; when do they begin between two moments (the dry run lists the windows of the coming day). Plain
functions of a window and a moment, so the claim (runs/windows.py), the dry run and the pages decide the same
way and a test passes the moment it means.

Times of day and one-off inputs are read in the window's own zone (default UTC, the zone the form proposes is
the editor's): a weekly 22:00-02:00 in Europe/Berlin is 22:00 Berlin time whatever the season. A local time
that does not exist (the hour skipped when clocks go forward) is taken as zoneinfo's first reading of it.
"""
import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CHAIN_LIMIT = 20  # windows that follow one another without a gap are joined, up to this many


def zone(name):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"time_zone": f"{name!r} is not a time zone name such as Europe/London"}) from None


def weekdays(window):
    return sorted({int(day) for day in window.days if day.isdigit() and int(day) < 7})


def window_end(window, at):
    """The instant the window ends when `at` (aware) lies in [start, end), else None."""
    if window.kind == "once":
        if window.starts_at and window.ends_at and window.starts_at <= at < window.ends_at:
            return window.ends_at
        return None
    if window.start_time is None or window.end_time is None:
        return None
    today = at.astimezone(zone(window.time_zone)).date()
    # A window that started yesterday may still be open (it crosses midnight).
    for start, end in _weekly_spans(window, today - datetime.timedelta(days=1), today):
        if start <= at < end:
            return end.astimezone(datetime.timezone.utc)
    return None


def window_starts(window, after, before):
    """The instants (UTC) in (after, before] at which `window` begins, earliest first."""
    if window.kind == "once":
        if window.starts_at and window.ends_at and after < window.starts_at <= before:
            return [window.starts_at.astimezone(datetime.timezone.utc)]
        return []
    if window.start_time is None or window.end_time is None:
        return []
    tz = zone(window.time_zone)
    spans = _weekly_spans(window, after.astimezone(tz).date(), before.astimezone(tz).date())
    return [start.astimezone(datetime.timezone.utc) for start, _ in spans if after < start <= before]


def _weekly_spans(window, first_day, last_day):
    """(start, end) in the window's zone of each of its weeks' windows starting on a day from `first_day` to
    `last_day` (local dates)."""
    tz = zone(window.time_zone)
    days = weekdays(window)
    day = first_day
    while day <= last_day:
        if day.weekday() in days:
            start = datetime.datetime.combine(day, window.start_time, tzinfo=tz)
            end_day = day + datetime.timedelta(days=1) if window.end_time <= window.start_time else day
            yield start, datetime.datetime.combine(end_day, window.end_time, tzinfo=tz)
        day += datetime.timedelta(days=1)


def closed_until(windows, at):
    """The end of the maintenance in force at `at` over `windows` (one connection's, or several): windows that
    overlap or follow one another are joined. None when none holds at `at`."""
    windows = list(windows)
    end = None
    moment = at
    for _ in range(CHAIN_LIMIT):
        ends = [found for found in (window_end(window, moment) for window in windows) if found]
        if not ends:
            break
        end = moment = max(ends)
    return end


def validate(window):
    """Errors by field for a window that cannot hold (the form and the admin show them in place)."""
    errors = {}
    try:
        zone(window.time_zone)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if window.kind == "once":
        if not window.starts_at:
            errors["starts_at"] = "A one-off window needs its start."
        if not window.ends_at:
            errors["ends_at"] = "A one-off window needs its end."
        elif window.starts_at and window.ends_at <= window.starts_at:
            errors["ends_at"] = "The end must come after the start."
    else:
        if not weekdays(window):
            errors["days"] = "Choose at least one day."
        if window.start_time is None:
            errors["start_time"] = "A weekly window needs its start time."
        if window.end_time is None:
            errors["end_time"] = "A weekly window needs its end time."
        elif window.start_time is not None and window.end_time == window.start_time:
            errors["end_time"] = "The end must differ from the start (a whole day: 00:00 to 23:59)."
    if errors:
        raise ValidationError(errors)


def describe(window):
    """`Mon, Tue 22:00-02:00 (next day) Europe/Berlin` or `2026-12-01 22:00 - 2026-12-02 04:00 Europe/Berlin`."""
    name = window.time_zone or "UTC"
    if window.kind == "once":
        if not (window.starts_at and window.ends_at):
            return "one-off window"
        try:
            tz = zone(name)
        except ValidationError:  # described anyway (an admin list must not fail on one bad row)
            tz, name = datetime.timezone.utc, "UTC"
        start, end = window.starts_at.astimezone(tz), window.ends_at.astimezone(tz)
        return f"{start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} {name}"
    if window.start_time is None or window.end_time is None:
        return "weekly window"
    days = ", ".join(DAY_NAMES[day] for day in weekdays(window))
    crosses = " (next day)" if window.end_time <= window.start_time else ""
    return f"{days} {window.start_time:%H:%M}-{window.end_time:%H:%M}{crosses} {name}"
