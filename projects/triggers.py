"""When a trigger fires: cron fields, intervals and one-off times, evaluated in the trigger's own time zone.

Pure functions of a Trigger row and a point in time (no database, no clock), so the scheduler, the project page
and the tests all agree. Every time returned is an aware UTC datetime: the trigger's *nominal* fire time, before
jitter.

Cron rules an operator coming from cron or APScheduler expects:
- each field accepts cron syntax: ``*``, ``5``, ``1-5``, ``*/15``, ``10-50/10``, lists ``1,15``, names ``jan``/``mon``;
  the day field also accepts ``last``; day of week counts 0 = Monday (or mon-sun); week is the ISO week number.
- a blank date field (year, month, day, week, day of week) means every; all the date fields must match (AND).
- a blank time field means every, except the time fields finer than the finest one set, which start at 0: hour 2,
  minute 30 fires once at 02:30:00, not sixty times. With no time field set, a trigger fires at midnight.
- daylight saving: a fixed hour that does not exist (spring forward) fires once, shifted forward by the gap
  (02:30 becomes 03:30); a fixed hour that happens twice (fall back) fires once, the first time. A trigger whose
  hour is blank (hourly, every minute...) follows real elapsed time: it skips the missing hour and runs in both
  repeated hours.
"""
import bisect
import calendar
import datetime as dt
import heapq
import logging
import random
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
TIME_FIELDS = ("hour", "minute", "second")
LIMITS = {"year": (1970, 2199), "month": (1, 12), "day": (1, 31), "week": (1, 53), "day_of_week": (0, 6),
          "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
NAMES = {
    "month": {name: number for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)},
    "day_of_week": {name: number for number, name in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])},
}
LAST_DAY = -1
# Offsets within one zone never differ by this much, so a wall-clock time this far ahead is later in real time.
ORDERING_HORIZON = dt.timedelta(hours=3)
INTERVAL_UNITS = {"weeks": dt.timedelta(weeks=1), "days": dt.timedelta(days=1), "hours": dt.timedelta(hours=1),
                  "minutes": dt.timedelta(minutes=1), "seconds": dt.timedelta(seconds=1)}
# What datetime arithmetic can hold with room to spare (the models' validators use these).
MAX_INTERVAL_SECONDS = 100 * 365 * 24 * 3600
MAX_JITTER_SECONDS = 24 * 3600


def time_zone(name, fallback="UTC"):
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not a time zone name such as Europe/London or America/New_York")


def zone_of(trigger):
    """The trigger's own zone, else its project's (or system job's), else UTC."""
    owner = trigger.project if trigger.project_id else (trigger.system_job if trigger.system_job_id else None)
    return time_zone(trigger.time_zone or getattr(owner, "time_zone", "") or "UTC")


# --- cron field parsing ----------------------------------------------------------------------------

def _value(field, text):
    text = text.strip().lower()
    if field == "day" and text in ("last", "l"):
        return LAST_DAY
    if text in NAMES.get(field, {}):
        return NAMES[field][text]
    if not text.isdigit():
        raise ValidationError(f"{text!r} is not a number" + (" or a name" if field in NAMES else ""))
    number = int(text)
    low, high = LIMITS[field]
    if not low <= number <= high:
        raise ValidationError(f"{number} is outside {low}-{high}")
    return number


def parse_field(field, text):
    """The set of values a cron field allows, or None for every value."""
    text = (text or "").strip()
    if text in ("", "*"):
        return None
    low, high = LIMITS[field]
    values = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.strip().isdigit() or int(step_text) < 1:
                raise ValidationError(f"the step in {part!r} must be a whole number above 0")
            step = int(step_text)
        base = base.strip()
        if base in ("*", ""):
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _value(field, first), _value(field, last)
            if start > stop or LAST_DAY in (start, stop):
                raise ValidationError(f"the range {base!r} runs backwards")
        else:
            start = _value(field, base)
            stop = high if step_text else start
        if start == LAST_DAY:
            values.add(LAST_DAY)
            continue
        values.update(range(start, stop + 1, step))
    return frozenset(values)


class CronSpec:
    """Parsed cron fields with the time-field defaults applied; finds matching wall-clock times."""

    def __init__(self, fields):
        sets = {}
        errors = {}
        for field in CRON_FIELDS:
            try:
                sets[field] = parse_field(field, fields.get(field, ""))
            except ValidationError as exc:
                errors[field] = f"{field.replace('_', ' ').capitalize()}: {exc.messages[0]}"
        if errors:
            raise ValidationError(errors)
        set_times = [name for name in TIME_FIELDS if (fields.get(name) or "").strip()]
        finest = TIME_FIELDS.index(set_times[-1]) if set_times else -1
        for name in TIME_FIELDS[finest + 1:]:
            sets[name] = frozenset({0})
        self.sets = sets
        self.hour_is_fixed = sets["hour"] is not None
        self.hours = sorted(sets["hour"] or range(24))
        self.minutes = sorted(sets["minute"] or range(60))
        self.seconds = sorted(sets["second"] or range(60))
        self.max_year = max(sets["year"]) if sets["year"] else LIMITS["year"][1]

    def _date_matches(self, day):
        s = self.sets
        if s["day"] is not None:
            last = calendar.monthrange(day.year, day.month)[1]
            if day.day not in s["day"] and not (LAST_DAY in s["day"] and day.day == last):
                return False
        if s["day_of_week"] is not None and day.weekday() not in s["day_of_week"]:
            return False
        return s["week"] is None or day.isocalendar()[1] in s["week"]

    def _time_at_or_after(self, floor):
        for hour in self.hours[bisect.bisect_left(self.hours, floor.hour):]:
            minutes = self.minutes[bisect.bisect_left(self.minutes, floor.minute):] if hour == floor.hour \
                else self.minutes
            for minute in minutes:
                start = floor.second if (hour, minute) == (floor.hour, floor.minute) else 0
                index = bisect.bisect_left(self.seconds, start)
                if index < len(self.seconds):
                    return dt.time(hour, minute, self.seconds[index])
        return None

    def next_wall_time(self, start):
        """The first matching naive wall-clock time at or after `start`, or None when none is left."""
        years, months = self.sets["year"], self.sets["month"]
        day, floor = start.date(), start.time().replace(microsecond=0)
        if start.microsecond:
            floor = (dt.datetime.combine(day, floor) + dt.timedelta(seconds=1)).time()
            if floor == dt.time(0):
                day += dt.timedelta(days=1)
        midnight = dt.time(0)
        while day.year <= self.max_year:
            if years is not None and day.year not in years:
                later = [year for year in years if year > day.year]
                if not later:
                    return None
                day, floor = dt.date(min(later), 1, 1), midnight
                continue
            if months is not None and day.month not in months:
                later = [month for month in months if month > day.month]
                day = dt.date(day.year, min(later), 1) if later else dt.date(day.year + 1, 1, 1)
                floor = midnight
                continue
            if self._date_matches(day):
                found = self._time_at_or_after(floor)
                if found is not None:
                    return dt.datetime.combine(day, found)
            if day == dt.date.max:
                return None
            day, floor = day + dt.timedelta(days=1), midnight
        return None


# --- wall clock -> instants ---------------------------------------------------------------------------

def instants(wall, zone, fixed_hour=True):
    """The real UTC instants a naive wall-clock time stands for in `zone` (see the module notes on DST)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:  # the wall time happens twice (clocks went back)
        return [first] if fixed_hour else [first, second]
    # The wall time does not exist (clocks went forward); fold=0 reads it with the old offset: shifted forward.
    return [first] if fixed_hour else []


def _offsets_near(wall, zone):
    return [wall.replace(tzinfo=zone, fold=fold).utcoffset() for fold in (0, 1)] + [
        (wall + shift).replace(tzinfo=zone).utcoffset() for shift in (-ORDERING_HORIZON, ORDERING_HORIZON)]


def _earliest_instant_from(wall, zone):
    """No wall-clock time at or after `wall` maps to a real instant before this."""
    return (wall - max(_offsets_near(wall, zone))).replace(tzinfo=UTC)


def _cron_times(spec, zone, after):
    """Fire instants strictly after `after`, ascending, each once."""
    # Start at the earliest wall-clock time whose instant can still be after `after` (an hour early near DST).
    start = after.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    wall = start + min(_offsets_near(after.astimezone(zone).replace(tzinfo=None), zone))
    pending, last = [], None
    while True:
        match = spec.next_wall_time(wall)
        bound = None if match is None else _earliest_instant_from(match, zone)
        while pending and (bound is None or pending[0][0] < bound):
            instant, _ = heapq.heappop(pending)
            if instant > after and instant != last:
                last = instant
                yield instant
        if match is None:
            return
        for instant in instants(match, zone, spec.hour_is_fixed):
            heapq.heappush(pending, (instant, match))
        wall = match + dt.timedelta(seconds=1)


def _interval_times(trigger, zone, after):
    step = INTERVAL_UNITS[trigger.unit] * trigger.every
    anchor = trigger.start_at or trigger.created_at
    first_index = 0 if trigger.start_at else 1
    if trigger.unit in ("weeks", "days"):
        # Whole days follow the wall clock: every day at 02:30 stays at 02:30 across DST changes.
        anchor_wall = anchor.astimezone(zone).replace(tzinfo=None)
        index = max(first_index, (after.astimezone(zone).replace(tzinfo=None) - anchor_wall) // step - 1)
        while True:
            for instant in instants(anchor_wall + index * step, zone, fixed_hour=True):
                if instant > after:
                    yield instant
            index += 1
    index = max(first_index, (after - anchor) // step)
    while True:
        instant = anchor + index * step
        if instant > after:
            yield instant.astimezone(UTC)
        index += 1


def _raw_times(trigger, after):
    zone = zone_of(trigger)
    if trigger.kind == "once":
        if trigger.run_at and trigger.run_at > after:
            yield trigger.run_at.astimezone(UTC)
        return
    if trigger.kind == "interval":
        yield from _interval_times(trigger, zone, after)
        return
    yield from _cron_times(CronSpec({name: getattr(trigger, name) for name in CRON_FIELDS}), zone, after)


def fire_times(trigger, after):
    """Every nominal fire time strictly after `after` within start/end, ascending (a generator)."""
    after = after.astimezone(UTC)
    if trigger.start_at and trigger.start_at > after:
        after = trigger.start_at.astimezone(UTC) - dt.timedelta(microseconds=1)
    try:
        for instant in _raw_times(trigger, after):
            if trigger.end_at and instant > trigger.end_at:
                return
            yield instant
    except OverflowError:
        # Past year 9999, or an interval saved before the validators (every 10**12 weeks): no time is left.
        # One trigger's impossible number must not break the scheduler, list_schedules or the project page.
        logger.warning("Trigger %s has no fire time that Python's dates can hold (%s); it is treated as "
                       "having none left", trigger.pk, describe(trigger))


def next_fire_times(trigger, after, count=10):
    times = []
    for instant in fire_times(trigger, after):
        times.append(instant)
        if len(times) >= count:
            break
    return times


def next_fire_time(trigger, after):
    found = next_fire_times(trigger, after, 1)
    return found[0] if found else None


def latest_due(trigger, due, now, limit=1000):
    """(the latest fire time in [due, now], how many fire times fell in it; counted up to `limit`)."""
    latest, count = due, 1
    for instant in fire_times(trigger, due):
        if instant > now:
            return latest, count
        latest, count = instant, count + 1
        if count >= limit:
            break
    # A long gap of frequent fire times: find the latest one near `now` without counting every one.
    for window in (dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=2)):
        recent = [instant for instant in _take_until(fire_times(trigger, max(latest, now - window)), now)]
        if recent:
            return recent[-1], count
    return latest, count


def _take_until(times, end, limit=100_000):
    for index, instant in enumerate(times):
        if instant > end or index >= limit:
            return
        yield instant


def jitter(trigger, instant):
    """A stable pseudo-random delay for this trigger and fire time: spread, yet repeatable."""
    if not trigger.jitter_seconds:
        return dt.timedelta(0)
    seed = f"{trigger.pk}:{instant.isoformat()}"
    # Capped: a row saved before the validators must not overflow the schedule's datetime.
    return dt.timedelta(seconds=random.Random(seed).uniform(0, min(trigger.jitter_seconds, MAX_JITTER_SECONDS)))


# --- validation and words ------------------------------------------------------------------------------

def validate(trigger):
    """Raise ValidationError (per field where possible) when the trigger cannot work as entered."""
    errors = {}
    if trigger.time_zone:
        try:
            time_zone(trigger.time_zone)
        except ValidationError as exc:
            errors["time_zone"] = exc.messages[0]
    if trigger.start_at and trigger.end_at and trigger.end_at <= trigger.start_at:
        errors["end_at"] = "The end must be after the start."
    if trigger.kind == "cron":
        try:
            CronSpec({name: getattr(trigger, name) for name in CRON_FIELDS})
        except ValidationError as exc:
            errors.update(exc.message_dict)
    elif trigger.kind == "interval":
        if not trigger.every:
            errors["every"] = "An interval trigger needs a number: every N units."
        if trigger.unit not in INTERVAL_UNITS:
            errors["unit"] = "Choose weeks, days, hours, minutes or seconds."
        elif trigger.every and trigger.every * INTERVAL_UNITS[trigger.unit].total_seconds() > MAX_INTERVAL_SECONDS:
            most = MAX_INTERVAL_SECONDS // int(INTERVAL_UNITS[trigger.unit].total_seconds())
            errors["every"] = f"At most 100 years: every {most:,} {trigger.unit} or less."
    elif trigger.kind == "once" and not trigger.run_at:
        errors["run_at"] = "A one-off trigger needs a date and time."
    if errors:
        raise ValidationError(errors)


def describe(trigger):
    """A short sentence for pages and command output."""
    if trigger.kind == "once":
        return f"Once at {trigger.run_at:%Y-%m-%d %H:%M:%S %Z}" if trigger.run_at else "Once (no time set)"
    if trigger.kind == "interval":
        return f"Every {trigger.every} {trigger.unit}" if trigger.every else "Interval (incomplete)"
    parts = [f"{name.replace('_', ' ')} {getattr(trigger, name)}" for name in CRON_FIELDS if getattr(trigger, name)]
    return "Cron: " + (", ".join(parts) if parts else "every day at midnight")
