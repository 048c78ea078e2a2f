"""Late and missed runs, checked by the housekeeping leader on every pass (projects/housekeeping.py). The
candidates are found by reads alone (the deadlines compared in SQL where they can be), outside any transaction:
on SQLite a transaction that writes holds the one write lock, and the workers must not wait on a check. Only when
there is something to raise or clear does a short transaction, fenced by the leader's lease, write it, so each
alert is raised once across every host (and the unique keys make a stale read harmless).

What a task leaves blank comes from its project:
- `finish_by`, a time of day in the project's zone: a run is late once it is still queued or running at the first
  such time after the moment it stands for (its scheduled time for scheduled, retried and dependent runs; its
  creation for one started by hand);
- `max_duration`: a run still running this long after it started is late;
- `start_grace`: a scheduled run is missed when it has not started this long after its time (no worker was
  free, the workers were down), when it started only later than that (the scheduler was late, so it was created
  late), when the scheduler recorded it as a skipped missed start, or when a trigger's due time has passed by
  the grace and the scheduler has started nothing for it.

An alert is raised once (`Alert`'s unique keys), logged on its run and queued to the task's channels
(alerts/outbox.py). It clears itself when its run ends; one without a run, or whose run never ran (a skipped
missed start), clears when a later run of the task has run to its end.
"""
import datetime
import logging
import zoneinfo

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts import outbox
from alerts.models import Alert
from runs.models import Run

logger = logging.getLogger(__name__)
# Runs that stand for their scheduled time: their finish-by deadline follows it (a retry keeps the original's).
ANCHORED = (Run.Trigger.SCHEDULE, Run.Trigger.RETRY, Run.Trigger.DEPENDENCY)
UNFINISHED = (Run.Status.QUEUED, Run.Status.RUNNING)
FIRST_LOOK_BACK = datetime.timedelta(hours=1)
RECHECK_IDS = 200


def limits(task):
    """(finish_by, max_duration, start_grace) of `task`, each the task's own or else its project's."""
    project = task.project
    return (task.finish_by or project.finish_by, task.max_duration or project.max_duration,
            task.start_grace or project.start_grace)


def zone_of(project):
    try:
        return zoneinfo.ZoneInfo(project.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return datetime.timezone.utc


def finish_by_deadline(anchor, finish_by, zone):
    """The first `finish_by` time of day (in `zone`) at or after `anchor`."""
    local = anchor.astimezone(zone)
    day = local.date()
    moment = datetime.datetime.combine(day, finish_by, tzinfo=zone)
    if moment < local:
        moment = datetime.datetime.combine(day + datetime.timedelta(days=1), finish_by, tzinfo=zone)
    return moment


def deadline(run):
    """(moment, sentence) of the run's earliest deadline, or None when its task has none."""
    finish_by, max_duration, _ = limits(run.task)
    found = []
    if finish_by is not None:
        zone = zone_of(run.task.project)
        anchor = run.scheduled_for if run.trigger in ANCHORED else run.created_at
        moment = finish_by_deadline(anchor, finish_by, zone)
        clock = "%H:%M:%S" if finish_by.second else "%H:%M"
        found.append((moment, f"Late: not finished by {moment.astimezone(zone).strftime('%Y-%m-%d ' + clock + ' %Z')} "
                              f"(expected to finish by {finish_by.strftime(clock)})"))
    if max_duration is not None and run.started_at is not None:
        found.append((run.started_at + max_duration,
                      f"Late: still running after {_words(max_duration)} (its maximum duration)"))
    return min(found, key=lambda item: item[0]) if found else None


def _words(span):
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{seconds} s" if seconds else ""]
    return " ".join(part for part in parts if part) or "0 s"


def _local(moment, project):
    return f"{moment.astimezone(zone_of(project)):%Y-%m-%d %H:%M:%S %Z}"


class Checker:
    """The leader's checks. Keeps, in memory, the newest run id it has looked at, so a run created and ended
    between two passes (a run started late that finished quickly, a skipped missed start) is still seen."""

    def __init__(self):
        self.seen_up_to = None
        self.token = None

    def check(self, leadership=None, now=None):
        """One check; returns {"raised": [alerts], "cleared": count}. With `leadership`, fenced by its lease."""
        now = now or timezone.now()
        if leadership is not None and leadership.token != self.token:
            # Leading anew (perhaps after another process led for days): look back a bounded while, not at
            # every run since this process last led.
            self.token, self.seen_up_to = leadership.token, None
        newest = Run.objects.aggregate(newest=Max("id"))["newest"] or 0
        to_clear = clearable(now)
        found = late_runs(now) + missed_runs(now, self.seen_up_to) + missed_triggers(now)
        raised, cleared = [], 0
        if to_clear or found:
            with transaction.atomic():
                if leadership is not None:
                    leadership.fence(now)
                cleared = Alert.objects.filter(pk__in=to_clear, cleared_at__isnull=True).update(cleared_at=now)
                for kind, task, run, due_at, message in found:
                    alert = raise_alert(kind, task, run, due_at, message, now)
                    raised += [alert] if alert else []
        self.seen_up_to = newest
        return {"raised": raised, "cleared": cleared}


def raise_alert(kind, task, run, due_at, message, now):
    """Record the alert once and queue it to the task's channels; None when it was raised before."""
    if run is not None and Alert.objects.filter(task=task, kind=kind, due_at=due_at, run__isnull=True).update(
            run=run):
        return None  # raised earlier without its run (the scheduler was late): the run is known now
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, task=task, run=run, due_at=due_at, message=message,
                                         raised_at=now)
            outbox.queue_alert(alert)
    except IntegrityError:  # raised meanwhile
        return None
    logger.info("%s alert for task %s (run %s): %s", kind, task.pk, getattr(run, "pk", None), message)
    if run is not None:
        run.log(message, level="warning")
    return alert


def _plus(moment, *durations):
    """`moment` + the first set of `durations`, as a database expression."""
    return ExpressionWrapper(F(moment) + Coalesce(*[F(name) for name in durations]), output_field=DateTimeField())


MAX_DURATION = ("task__max_duration", "task__project__max_duration")
START_GRACE = ("task__start_grace", "task__project__start_grace")


def late_runs(now):
    """(kind, task, run, due, message) of every unfinished run past its deadline and not yet alerted. Runs past
    a maximum duration are found in SQL; a finish-by time needs the project's zone, so those runs (of the few
    tasks that set one) are looked at here."""
    unfinished = Run.objects.filter(status__in=UNFINISHED).exclude(alerts__kind=Alert.Kind.LATE)
    over_time = unfinished.alias(limit=_plus("started_at", *MAX_DURATION)).filter(
        started_at__isnull=False, limit__lte=now)
    with_finish_by = unfinished.filter(Q(task__finish_by__isnull=False) | Q(task__project__finish_by__isnull=False))
    found = {}
    for run in (over_time | with_finish_by).select_related("task__project"):
        due = deadline(run)
        if due is not None and due[0] <= now:
            found[run.pk] = (Alert.Kind.LATE, run.task, run, due[0], due[1])
    return list(found.values())


def missed_runs(now, seen_up_to):
    """Scheduled runs not started within the grace, started late, or recorded as skipped missed starts; the
    grace compared in SQL, so only real candidates are read."""
    # A margin below the newest id seen: a transaction that took its id earlier may have committed since.
    new = (Q(pk__gt=seen_up_to - RECHECK_IDS) if seen_up_to is not None
           else Q(created_at__gte=now - FIRST_LOOK_BACK))
    scheduled = (Run.objects.filter(trigger=Run.Trigger.SCHEDULE, upstream_run__isnull=True)  # a series
                 .exclude(alerts__kind=Alert.Kind.MISSED)  # successor waits for its predecessor
                 .alias(grace_ends=_plus("scheduled_for", *START_GRACE)))
    not_started = scheduled.filter(status=Run.Status.QUEUED, started_at__isnull=True, grace_ends__lte=now)
    started_late = scheduled.filter(new, started_at__gt=F("grace_ends"))
    skipped = scheduled.filter(new, status=Run.Status.SKIPPED, started_at__isnull=True,
                               error__startswith="Missed start", grace_ends__isnull=False)
    found = []
    for run in (not_started | started_late | skipped).select_related("task__project"):
        due = run.scheduled_for
        when = _local(due, run.task.project)
        if run.started_at is not None:
            message = f"Missed start: due at {when}, started only {_words(run.started_at - due)} later"
        elif run.status == Run.Status.SKIPPED:
            message = f"Missed start: due at {when}, not run (the scheduler was late; the project skips missed starts)"
        else:
            message = (f"Missed start: due at {when}, not started after {_words(now - due)} (no worker was free, "
                       f"or the workers are down)")
        found.append((Alert.Kind.MISSED, run.task, run, due, message))
    return found


def missed_triggers(now):
    """Triggers whose due time passed by the grace with nothing started: the scheduler is late or down."""
    from projects import triggers as trigger_times
    from projects.models import Trigger
    from runs.orchestration import root_tasks

    found = []
    overdue = Trigger.objects.filter(enabled=True, project__enabled=True, next_run_at__lt=now).select_related(
        "project")
    for trigger in overdue:
        due = trigger.next_run_at
        late_by = now - due - trigger_times.jitter(trigger, due)
        tasks = [task for task in root_tasks(trigger.project)
                 if limits(task)[2] is not None and late_by > limits(task)[2]]
        known = set(Alert.objects.filter(task__in=tasks, kind=Alert.Kind.MISSED, due_at=due)
                    .values_list("task_id", flat=True))
        for task in tasks:
            if task.pk not in known:
                found.append((Alert.Kind.MISSED, task, None, due,
                              f"Missed start: due at {_local(due, trigger.project)}, nothing started after "
                              f"{_words(now - due)} (the scheduler is late or down)"))
    return found


def clearable(now):
    """Ids of the open alerts that may clear: their run ran and ended; or (no run, or a run that never ran) a
    later run of the task has run to its end."""
    ids = list(Alert.objects.open().filter(run__status__in=Run.FINISHED, run__started_at__isnull=False)
               .values_list("pk", flat=True))
    waiting = Alert.objects.open().filter(Q(run__isnull=True) | Q(run__status__in=Run.FINISHED,
                                                                   run__started_at__isnull=True))
    for alert in waiting:
        later = Run.objects.filter(task=alert.task_id, scheduled_for__gte=alert.due_at, status__in=Run.FINISHED,
                                   started_at__isnull=False).exclude(pk=alert.run_id)
        if later.exists():
            ids.append(alert.pk)
    return ids
