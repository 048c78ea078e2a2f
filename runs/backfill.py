"""Backfill: run a task, or a whole project, once per date of a range ("as of" each date), as one batch.

Each date gets what a start would make (a task: one run; a project: one run per task a start runs, in series by
run rank or in parallel, as `orchestration.start_project` queues them), with `scheduled_for` at midnight of the
date in the project's time zone, so every parameter and date code resolves as of that date. Every run carries
the trigger "Backfill" and the batch (`runs.models.Backfill`).

All the runs are queued at once; the claim (runs/orchestration.py `in_turn`) lets a batch's runs start only for
its `max_dates` earliest dates not yet done, so dates run in date order, at most that many at once, while each
date keeps its series order and the task's and project's limits. Cancelling the batch cancels its queued runs
and asks its running ones to stop, through the same code as cancelling one run.

A page submit carries a one-time token (`Backfill.token`, unique): submitting the same form twice finds the
first batch instead of starting a second.
"""
import datetime
import logging
import zoneinfo

from django.db import IntegrityError, transaction
from django.utils import timezone

from connections.protocols import ConnectorError
from runs import orchestration, queueing
from runs.models import Backfill, Run
from runs.orchestration import Refused
from runs.preview import preview

logger = logging.getLogger(__name__)
MAX_DATES = 1000  # dates in one batch
MAX_RUNS = 5000  # runs in one batch (dates x tasks)
MAX_IN_FLIGHT = 20  # the highest "dates at once" a batch may ask for
PREVIEWED_TASKS = 10  # tasks of a project whose first and last date the confirm page shows


def zone_of(project):
    name = (project.time_zone or "UTC").strip()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Refused(f"The project's time zone {name!r} is unknown: fix it on the project first.") from None


def moment_of(project, day):
    """The instant a backfill run of `day` stands for: midnight of that date in the project's time zone."""
    return datetime.datetime.combine(day, datetime.time(0), tzinfo=zone_of(project))


def tasks_of(project, task=None):
    """The tasks each date runs: the task, or what a start of the project runs (in run order)."""
    return [task] if task is not None else orchestration.root_tasks(project)


def check(project, task, first, last, max_dates):
    """The dates of the range, or Refused saying in plain words what is wrong with the request."""
    if first is None or last is None:
        raise Refused("Give the first and the last date.")
    if last < first:
        raise Refused(f"The last date ({last}) is before the first ({first}).")
    count = (last - first).days + 1
    if count > MAX_DATES:
        raise Refused(f"{count} dates is too many for one backfill: at most {MAX_DATES}.")
    if not 1 <= (max_dates or 0) <= MAX_IN_FLIGHT:
        raise Refused(f"Dates at once must be between 1 and {MAX_IN_FLIGHT}.")
    zone_of(project)
    if task is None:
        if not project.enabled:
            raise Refused(f"Project {project.name} is disabled; enable it first.")
        tasks = tasks_of(project)
        if not tasks:
            raise Refused(f"Project {project.name} has no enabled task a start would run.")
        if count * len(tasks) > MAX_RUNS:
            raise Refused(f"{count} dates × {len(tasks)} tasks is too many runs for one backfill: at most "
                          f"{MAX_RUNS}.")
    return [first + datetime.timedelta(days=n) for n in range(count)]


def plan(project, task, first, last, max_dates):
    """What the confirm page shows: the dates, the tasks, the run count, and the preview (runs/preview.py) of the
    first and the last date for each task (the first few of a project)."""
    dates = check(project, task, first, last, max_dates)
    tasks = tasks_of(project, task)
    shown = tasks[:PREVIEWED_TASKS]
    ends = [dates[0]] if len(dates) == 1 else [dates[0], dates[-1]]
    previews = [{"date": day, "tasks": [{"task": each, "preview": _preview(each, moment_of(project, day))}
                                        for each in shown]} for day in ends]
    return {"dates": dates, "tasks": tasks, "run_count": len(dates) * len(tasks), "previews": previews,
            "hidden_tasks": len(tasks) - len(shown), "series": task is None and project.mode == project.Mode.SERIES}


def _preview(task, moment):
    try:
        return preview(task, moment)
    except ConnectorError as exc:
        return {"errors": [exc.message], "parameters": []}


def start(project, task, first, last, max_dates=1, user=None, token=None, wake=True):
    """Create the batch and queue its runs; return (batch, whether this call made it). With a `token` already
    used, the batch that token made is returned and nothing is queued. `wake=False`: no worker is woken (the
    caller executes the run itself, `run_task --as-of --sync`)."""
    dates = check(project, task, first, last, max_dates)
    if token:
        existing = Backfill.objects.filter(token=token).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            backfill = Backfill.objects.create(project=project, task=task, first_date=first, last_date=last,
                                               max_dates=max_dates, requested_by=user, token=token or None)
            _queue(backfill, project, task, dates, user, wake)
    except IntegrityError:  # the same token a moment ago, from another request: that batch stands
        if token:
            return Backfill.objects.get(token=token), False
        raise
    logger.info("Backfill %s: %s date(s) of %s queued", backfill.pk, len(dates), task or project)
    return backfill, True


def _queue(backfill, project, task, dates, user, wake):
    who = f" by {user.username}" if user else ""
    for day in dates:
        moment = moment_of(project, day)
        if task is None:
            orchestration.start_project(project, Run.Trigger.BACKFILL, user=user, scheduled_for=moment,
                                        backfill=backfill)
            continue
        run = Run.objects.create(task=task, trigger=Run.Trigger.BACKFILL, requested_by=user, scheduled_for=moment,
                                 priority=task.priority, backfill=backfill)
        run.log(f"Queued (backfill #{backfill.pk} for {day}{who})")
    if wake:
        in_turn = orchestration.in_turn(orchestration.startable().filter(backfill=backfill)).count()
        queueing.submit(min(in_turn, orchestration.BACKFILL_WAKE_LIMIT))


def parse_date(text, what="date"):
    """A YYYY-MM-DD date from a command line; Refused naming the value otherwise."""
    try:
        return datetime.date.fromisoformat((text or "").strip())
    except ValueError:
        raise Refused(f"The {what} {text!r} is not a date: use YYYY-MM-DD.") from None


def cancel(backfill, user=None, now=None):
    """Cancel the batch: its queued runs at once (latest date first, so nothing waiting on one is left), its
    running runs asked to stop. Return a sentence with the counts; Refused when nothing of it is left to stop."""
    now = now or timezone.now()
    who = f" by {user.username}" if user else ""
    Backfill.objects.filter(pk=backfill.pk, cancelled_at__isnull=True).update(cancelled_at=now, cancelled_by=user)
    cancelled, asked, tasks = 0, 0, set()
    for run in backfill.runs.filter(status=Run.Status.QUEUED).order_by("-scheduled_for", "-id"):
        if run.cancel_queued(f"Cancelled{who} with backfill #{backfill.pk}", now):
            queueing.remove_retry_schedule(run)
            cancelled += 1
            tasks.add(run.task)
        elif run.request_cancel():  # a worker claimed it meanwhile
            run.log(f"Cancel requested{who} with backfill #{backfill.pk}: stopping the run", level="warning")
            asked += 1
    for run in backfill.runs.filter(status=Run.Status.RUNNING, cancel_requested=False):
        if run.request_cancel():
            run.log(f"Cancel requested{who} with backfill #{backfill.pk}: stopping the run", level="warning")
            asked += 1
    for each in tasks:  # tasks that depend on a cancelled one are decided (skipped) as after any cancel
        orchestration.decide_downstream(each, now)
    backfill.refresh_from_db()
    if not cancelled and not asked:
        raise Refused(f"Backfill #{backfill.pk} has no queued or running run left to cancel.")
    logger.info("Backfill %s cancelled: %s queued cancelled, %s running asked to stop", backfill.pk, cancelled, asked)
    return (f"Backfill #{backfill.pk} cancelled: {cancelled} queued run{'s' if cancelled != 1 else ''} cancelled, "
            f"{asked} running run{'s' if asked != 1 else ''} asked to stop.")


def dates_of(backfill):
    """The batch's runs grouped by date for its page: [(date, [runs in run order])], in date order."""
    zone = zone_of(backfill.project)
    grouped = {}
    for run in backfill.runs.select_related("task").order_by("scheduled_for", "id"):
        grouped.setdefault(run.scheduled_for.astimezone(zone).date(), []).append(run)
    return sorted(grouped.items())
