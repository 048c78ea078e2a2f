"""A cron expression typed in one box (five fields, or six with seconds first), as the trigger's own fields,
and the words and next times shown beside it.

Cron counts day of week 0 (or 7) = Sunday, the trigger fields 0 = Monday (projects/triggers.py): numbers are
written as day names on the way in (`1-5` becomes `mon,tue,wed,thu,fri`), so nothing is shifted by a day.
A `*` stays `*` (every), so `* * * * *` is every minute, not a blank trigger.
"""
from cron_descriptor import Options, get_description
from django.core.exceptions import ValidationError

CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FIVE = ("minute", "hour", "day", "month", "day_of_week")
SIX = ("second",) + FIVE


def _days(text):
    parts = []
    for part in text.lower().split(","):
        base, _, step = part.partition("/")
        if not any(ch.isdigit() for ch in base) and not step:
            parts.append(base)  # names and * pass as they are
            continue
        low, _, high = base.partition("-")
        try:
            first = 0 if low == "*" else int(low)
            last = 6 if low == "*" else int(high or low if not step else (high or 6))
            every = int(step or 1)
        except ValueError:
            raise ValidationError(f"{part!r} is not a day of week: use 0-7 or sun-sat") from None
        if not (0 <= first <= 7 and 0 <= last <= 7 and every > 0):
            raise ValidationError(f"{part!r} is not a day of week: use 0-7 or sun-sat")
        parts.extend(CRON_DAYS[number] for number in range(first, last + 1, every))
    return ",".join(dict.fromkeys(parts))


def fields_of(expression):
    """{field: value} of a cron expression; ValidationError naming what is wrong."""
    words = expression.split()
    if len(words) not in (5, 6):
        raise ValidationError(f"A cron expression has five fields (minute hour day month weekday) or six "
                              f"(seconds first); this one has {len(words)}.")
    values = dict(zip(SIX if len(words) == 6 else FIVE, words))
    values.setdefault("second", "0")
    values["day_of_week"] = _days(values["day_of_week"])
    return values


def description(expression):
    """The expression in words (cron-descriptor), or '' when it cannot say."""
    try:
        options = Options()
        options.use_24hour_time_format = True
        return get_description(expression, options)
    except Exception:  # the library raises its own errors for shapes it does not read; the parser speaks then
        return ""
