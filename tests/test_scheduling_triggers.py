"""When triggers fire: cron fields, intervals, one-offs, time zones and daylight saving (no clock, no database)."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from projects import scheduling, triggers
from projects.models import Trigger

UTC = dt.timezone.utc
NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def trigger(**fields):
    fields.setdefault("kind", "cron")
    fields.setdefault("created_at", dt.datetime(2024, 1, 1, tzinfo=UTC))
    return Trigger(pk=fields.pop("pk", 7), **fields)


def local(times, zone):
    return [t.astimezone(zone).strftime("%m-%d %H:%M:%S %z") for t in times]


@pytest.mark.parametrize("zone, spring, autumn", [
    (NEW_YORK, dt.date(2024, 3, 10), dt.date(2024, 11, 3)),
    (LONDON, dt.date(2024, 3, 31), dt.date(2024, 10, 27)),
])
@pytest.mark.parametrize("hour", ["2", "1"])
def test_a_daily_job_runs_exactly_once_on_each_day_around_both_clock_changes(zone, spring, autumn, hour):
    daily = trigger(time_zone=zone.key, hour=hour, minute="30")
    for change in (spring, autumn):
        start = dt.datetime.combine(change - dt.timedelta(days=3), dt.time(), zone)
        times = triggers.next_fire_times(daily, start, 7)
        days = [t.astimezone(zone).date() for t in times]
        assert days == [change + dt.timedelta(days=offset) for offset in range(-3, 4)]
        for moment in times:
            wall = moment.astimezone(zone)
            assert (wall.hour, wall.minute) in {(int(hour), 30), (int(hour) + 1, 30)}


def test_spring_forward_in_new_york_moves_0230_to_0330_and_fall_back_runs_0130_once():
    at_0230 = trigger(time_zone="America/New_York", hour="2", minute="30")
    spring = triggers.next_fire_times(at_0230, dt.datetime(2024, 3, 9, 12, tzinfo=NEW_YORK), 3)
    assert local(spring, NEW_YORK) == ["03-10 03:30:00 -0400", "03-11 02:30:00 -0400", "03-12 02:30:00 -0400"]
    at_0130 = trigger(time_zone="America/New_York", hour="1", minute="30")
    autumn = triggers.next_fire_times(at_0130, dt.datetime(2024, 11, 2, 12, tzinfo=NEW_YORK), 3)
    assert local(autumn, NEW_YORK) == ["11-03 01:30:00 -0400", "11-04 01:30:00 -0500", "11-05 01:30:00 -0500"]


def test_london_clock_changes_at_one_o_clock():
    at_0130 = trigger(time_zone="Europe/London", hour="1", minute="30")
    spring = triggers.next_fire_times(at_0130, dt.datetime(2024, 3, 30, 12, tzinfo=LONDON), 2)
    assert local(spring, LONDON) == ["03-31 02:30:00 +0100", "04-01 01:30:00 +0100"]
    autumn = triggers.next_fire_times(at_0130, dt.datetime(2024, 10, 26, 12, tzinfo=LONDON), 2)
    assert local(autumn, LONDON) == ["10-27 01:30:00 +0100", "10-28 01:30:00 +0000"]


def test_an_hourly_job_follows_elapsed_time_across_clock_changes():
    hourly = trigger(time_zone="America/New_York", minute="0")
    autumn = triggers.next_fire_times(hourly, dt.datetime(2024, 11, 3, 0, 30, tzinfo=NEW_YORK), 4)
    assert local(autumn, NEW_YORK) == ["11-03 01:00:00 -0400", "11-03 01:00:00 -0500", "11-03 02:00:00 -0500",
                                       "11-03 03:00:00 -0500"]
    spring = triggers.next_fire_times(hourly, dt.datetime(2024, 3, 10, 0, 30, tzinfo=NEW_YORK), 3)
    assert local(spring, NEW_YORK) == ["03-10 01:00:00 -0500", "03-10 03:00:00 -0400", "03-10 04:00:00 -0400"]
    assert [b - a for a, b in zip(autumn, autumn[1:])] == [dt.timedelta(hours=1)] * 3


def test_cron_fields_combine_with_and_year_iso_week_weekday_and_last_day():
    first_monday_of_week_one = trigger(week="1", day_of_week="mon", hour="9")
    assert triggers.next_fire_times(first_monday_of_week_one, dt.datetime(2024, 1, 2, tzinfo=UTC), 3) == [
        dt.datetime(2024, 12, 30, 9, tzinfo=UTC), dt.datetime(2025, 12, 29, 9, tzinfo=UTC),
        dt.datetime(2027, 1, 4, 9, tzinfo=UTC)]
    month_end = trigger(year="2024-2025", month="jan,feb", day="last", hour="23", minute="59", second="59")
    assert local(triggers.next_fire_times(month_end, dt.datetime(2024, 1, 1, tzinfo=UTC), 5), UTC) == [
        "01-31 23:59:59 +0000", "02-29 23:59:59 +0000", "01-31 23:59:59 +0000", "02-28 23:59:59 +0000"]
    weekdays = trigger(day_of_week="mon-fri", hour="8-17/3", minute="*/30")
    times = triggers.next_fire_times(weekdays, dt.datetime(2024, 6, 7, 16, tzinfo=UTC), 4)  # a Friday
    assert local(times, UTC) == ["06-07 17:00:00 +0000", "06-07 17:30:00 +0000", "06-10 08:00:00 +0000",
                                 "06-10 08:30:00 +0000"]


def test_blank_fields_below_the_finest_time_set_start_at_zero():
    assert triggers.next_fire_times(trigger(hour="2", minute="30"), dt.datetime(2024, 1, 1, tzinfo=UTC), 2) == [
        dt.datetime(2024, 1, 1, 2, 30, tzinfo=UTC), dt.datetime(2024, 1, 2, 2, 30, tzinfo=UTC)]
    assert triggers.next_fire_times(trigger(), dt.datetime(2024, 1, 1, 5, tzinfo=UTC), 1) == [
        dt.datetime(2024, 1, 2, tzinfo=UTC)]
    every_second = triggers.next_fire_times(trigger(second="*"), dt.datetime(2024, 1, 1, 5, tzinfo=UTC), 3)
    assert [t.second for t in every_second] == [1, 2, 3]


def test_interval_triggers_keep_the_wall_clock_for_days_and_elapsed_time_for_hours():
    daily = trigger(kind="interval", every=1, unit="days", time_zone="America/New_York",
                    start_at=dt.datetime(2024, 3, 8, 2, 30, tzinfo=NEW_YORK))
    assert local(triggers.next_fire_times(daily, dt.datetime(2024, 3, 1, tzinfo=UTC), 4), NEW_YORK) == [
        "03-08 02:30:00 -0500", "03-09 02:30:00 -0500", "03-10 03:30:00 -0400", "03-11 02:30:00 -0400"]
    every_90_minutes = trigger(kind="interval", every=90, unit="minutes",
                               start_at=dt.datetime(2024, 3, 10, 5, tzinfo=UTC),
                               end_at=dt.datetime(2024, 3, 10, 9, tzinfo=UTC))
    assert triggers.next_fire_times(every_90_minutes, dt.datetime(2024, 3, 10, 5, 30, tzinfo=UTC), 10) == [
        dt.datetime(2024, 3, 10, 6, 30, tzinfo=UTC), dt.datetime(2024, 3, 10, 8, tzinfo=UTC)]


def test_start_end_and_one_off_triggers():
    windowed = trigger(hour="12", start_at=dt.datetime(2024, 5, 1, tzinfo=UTC),
                       end_at=dt.datetime(2024, 5, 3, 23, tzinfo=UTC))
    assert [t.day for t in triggers.next_fire_times(windowed, dt.datetime(2024, 1, 1, tzinfo=UTC), 10)] == [1, 2, 3]
    once = trigger(kind="once", run_at=dt.datetime(2024, 7, 1, 6, tzinfo=UTC))
    assert triggers.next_fire_times(once, dt.datetime(2024, 6, 1, tzinfo=UTC)) == [once.run_at]
    assert triggers.next_fire_time(once, once.run_at) is None


def test_jitter_spreads_a_start_repeatably_within_its_bound():
    jittered = trigger(jitter_seconds=120)
    moment = dt.datetime(2024, 1, 1, tzinfo=UTC)
    delays = {triggers.jitter(jittered, moment + dt.timedelta(days=day)) for day in range(20)}
    assert all(dt.timedelta(0) <= delay <= dt.timedelta(seconds=120) for delay in delays)
    assert len(delays) > 10
    assert triggers.jitter(jittered, moment) == triggers.jitter(jittered, moment)
    assert triggers.jitter(trigger(), moment) == dt.timedelta(0)


def test_missed_fire_times_are_counted_and_the_latest_one_found():
    every_second = trigger(second="*")
    due = dt.datetime(2024, 1, 1, 1, tzinfo=UTC)
    latest, count = triggers.latest_due(every_second, due, due + dt.timedelta(seconds=5, milliseconds=300))
    assert (latest, count) == (due + dt.timedelta(seconds=5), 6)
    latest, count = triggers.latest_due(every_second, due, due + dt.timedelta(hours=4))
    assert latest == due + dt.timedelta(hours=4) and count == 1000  # "1000 or more"


@pytest.mark.parametrize("fields, field, words", [
    ({"hour": "25"}, "hour", "25 is outside 0-23"),
    ({"minute": "5-1"}, "minute", "runs backwards"),
    ({"day_of_week": "funday"}, "day_of_week", "not a number or a name"),
    ({"second": "*/0"}, "second", "above 0"),
    ({"time_zone": "Mars/Olympus"}, "time_zone", "not a time zone name"),
    ({"kind": "interval", "unit": "days"}, "every", "every N units"),
    ({"kind": "once"}, "run_at", "needs a date and time"),
])
def test_a_trigger_that_cannot_work_is_refused_with_a_plain_message(fields, field, words):
    with pytest.raises(ValidationError) as refused:
        triggers.validate(trigger(**fields))
    assert words in " ".join(refused.value.message_dict[field])


def test_next_ten_run_times_show_the_offset_and_mark_the_clock_change():
    daily = trigger(time_zone="America/New_York", hour="2", minute="30")
    rows = scheduling.upcoming(daily, 10, after=dt.datetime(2024, 11, 1, tzinfo=UTC))
    assert len(rows) == 10
    assert [row["offset"] for row in rows[:3]] == ["UTC-04:00", "UTC-04:00", "UTC-05:00"]
    assert [row["changed"] for row in rows[:4]] == [False, False, True, False]
    assert rows[2]["abbreviation"] == "EST" and rows[2]["previous_offset"] == "UTC-04:00"
