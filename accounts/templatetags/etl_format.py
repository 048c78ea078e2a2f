"""The one way pages show times, durations and sizes (a builtin: every template has these filters).

Times: in the viewer's active zone (accounts/middleware.py), as `2026-11-29 13:40 CET`, with how long ago or
ahead when that is within a day. Durations: `1 min 23 s`. Sizes: 1024-based, `545.0 KB`, as Django's admin."""
import datetime

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


def _parts(seconds):
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value]
    return " ".join(shown[:2]) or "0 s"


@register.filter
def duration(value):
    """A timedelta (or seconds) as `1 min 23 s`; blank for none."""
    if value is None or value == "":
        return ""
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    if 0 < seconds < 1:
        return "< 1 s"
    return _parts(seconds)


@register.filter
def relative(value, now=None):
    """`3 min ago` or `in 2 h`, the two largest units."""
    if not isinstance(value, datetime.datetime):
        return ""
    delta = (value - (now or timezone.now())).total_seconds()
    if abs(delta) < 60:
        return "just now"
    text = _parts(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def _local(value):
    return timezone.localtime(value) if timezone.is_aware(value) else value


@register.filter
def when(value, style="full"):
    """A time as `2026-11-29 13:40 CET`, with `(3 min ago)` when within a day; `style="plain"` leaves that out,
    `"seconds"` adds the seconds."""
    if not isinstance(value, datetime.datetime):
        return ""
    local = _local(value)
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z" if style == "seconds" else "%Y-%m-%d %H:%M %Z")
    near = style != "plain" and abs((value - timezone.now()).total_seconds()) < 86400
    if near:
        return format_html('<time datetime="{}">{}</time> <span class="text-muted small">({})</span>',
                           value.isoformat(), text, relative(value))
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), text)


@register.filter
def instant(value):
    """An ISO 8601 text (as a stored JSON report keeps times) as an aware time for `when` and `until`; blank for
    anything else."""
    if isinstance(value, datetime.datetime):
        return value
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return ""
    return parsed if timezone.is_aware(parsed) else ""


@register.filter
def until(value):
    """A coming time as `02:00 CET` when it falls within a day, else `2026-12-01 02:00 CET` (the end of a wait)."""
    if not isinstance(value, datetime.datetime):
        return ""
    local = _local(value)
    near = abs((value - timezone.now()).total_seconds()) < 86400
    text = local.strftime("%H:%M %Z" if near else "%Y-%m-%d %H:%M %Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(),
                       local.strftime("%Y-%m-%d %H:%M:%S %Z"), text)


@register.filter
def clock(value):
    """A time of day as `13:40:05`, for log lines (the page shows the zone once)."""
    if not isinstance(value, datetime.datetime):
        return ""
    return _local(value).strftime("%H:%M:%S")


@register.simple_tag
def zone_name():
    return timezone.get_current_timezone_name()


@register.filter
def size(value):
    """A size in bytes as `545.0 KB` (1024-based)."""
    if value is None or value == "":
        return ""
    return filesizeformat(value).replace("\xa0", " ")


@register.filter
def is_future(value):
    return isinstance(value, datetime.datetime) and value > timezone.now()


@register.filter
def elapsed(run):
    """How long a run has gone (started to finished, or to now while it runs)."""
    if not getattr(run, "started_at", None):
        return ""
    return duration((run.finished_at or timezone.now()) - run.started_at)


@register.simple_tag(takes_context=True)
def query_with(context, name, value):
    """The current query string with `name` set to `value` (pagers that keep the other filters)."""
    query = context["request"].GET.copy()
    query[name] = value
    return query.urlencode()
