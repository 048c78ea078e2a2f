"""Triggers on django-q2: one django-q2 Schedule per enabled trigger, named "etl:trigger:<id>", calling
`fire_trigger(<id>)` and moved to the trigger's next fire time each time it fires.

- The Schedule's own type (every minute) is only a safety net: if a fire is lost, the next wake-up fires it
  late (as a missed run) and re-arms it. Pending retries are one-off Schedules "etl:retry:<run id>"
  (made by runs/queueing.py).
- Missed runs (the cluster was down): the project's policy runs once now or skips; never N catch-up runs.
- A disabled task or project is never started: the trigger still advances, so enabling takes effect at its next
  time. Saving a trigger or project re-arms its schedules; `reschedule` removes and recreates them;
  `cleanup_orphan_schedules` (a system job) removes those whose trigger, project or run is gone.
- Firing on time is the housekeeping leader's job (projects/housekeeping.py): every second it fires due
  triggers itself and runs django-q2's scheduler for the retries. django-q2 1.11 alone looks at its Schedule
  table only every 30 s (hard-coded in its cluster's guard loop), and a task it sends waits behind runs.
"""
import datetime
import logging
import re

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.module_loading import import_string

from projects import triggers
from projects.models import Project, Trigger
from runs import execution, orchestration, queueing
from runs.models import Run

logger = logging.getLogger(__name__)
PREFIX = "etl:"
TRIGGER_PREFIX = "etl:trigger:"
FIRE = "projects.scheduling.fire_trigger"
REAPER_NAME = "etl: fail runs whose worker died"
# The system jobs sit above the scheduler (one of them cleans its schedules up), so the scheduler reaches them
# the way django-q2 reaches the scheduler: by name.
RUN_SYSTEM_JOB = "projects.system_jobs.run_system_job"


def clock():
    """The time the scheduler believes it is; tests pass `now=` instead of waiting."""
    return timezone.now()


def misfire_grace():
    return datetime.timedelta(seconds=settings.ETL_MISFIRE_GRACE_SECONDS)


def trigger_schedule_name(trigger_id):
    return f"{TRIGGER_PREFIX}{trigger_id}"


def _schedules():
    from django_q.models import Schedule

    return Schedule.objects


# --- arming ------------------------------------------------------------------------------------------------

def arm(trigger, now=None):
    """Point the trigger's Schedule at its next fire time (plus jitter), or remove it when none is left."""
    from django_q.models import Schedule

    now = now or clock()
    name = trigger_schedule_name(trigger.pk)
    nominal = triggers.next_fire_time(trigger, now) if trigger.enabled else None
    Trigger.objects.filter(pk=trigger.pk).update(next_run_at=nominal)
    trigger.next_run_at = nominal
    if nominal is None:
        _schedules().filter(name=name).delete()
        return None
    wake = nominal + triggers.jitter(trigger, nominal)
    fields = {"func": FIRE, "args": str(trigger.pk), "schedule_type": Schedule.MINUTES, "minutes": 1,
              "repeats": -1, "next_run": wake}
    if not _schedules().filter(name=name).update(**fields):
        _schedules().create(name=name, **fields)
    return nominal


def ensure_portal_schedules():
    """Remove the reaper's old django-q2 schedule: the housekeeping process (projects/housekeeping.py) reaps every
    second now, outside the run queue. Returns whether there was one."""
    return bool(_schedules().filter(name=REAPER_NAME).delete()[0])


# --- firing ------------------------------------------------------------------------------------------------

def fire_trigger(trigger_id, now=None, execute=True, fence=None, run_job=True):
    """Start a due trigger's project or job once and re-arm it: called by the housekeeping leader
    (projects/housekeeping.py, with `execute=False`, inside its fenced transaction), and by django-q2 when a
    trigger's Schedule, the safety net, is due first.

    Already on a worker, it then executes the best queued run itself (`execute`), saving a trip through the
    queue. A system job is run here after the trigger's transaction, or returned as (job id, due) when `run_job`
    is false. `fence`, called first inside the transaction, raises when the caller may no longer act.
    """
    result = _fire(trigger_id, now or clock(), reserve=1 if execute else 0, fence=fence)
    if isinstance(result, tuple):  # a system job: run outside the transaction that holds the trigger's lock
        return import_string(RUN_SYSTEM_JOB)(*result) if run_job else result
    if execute and result.startswith("started") and not result.startswith("started 0"):
        result += f"; this worker then ran one: {execution.execute_next()}"
    return result


def _fire(trigger_id, now, reserve, fence=None):
    with transaction.atomic():
        if fence is not None:
            fence()
        # Waits until django-q2's scheduler has saved the Schedule, so re-arming is never overwritten.
        list(_schedules().select_for_update().filter(name=trigger_schedule_name(trigger_id)))
        trigger = Trigger.objects.select_for_update(of=("self",)).select_related("project", "system_job") \
            .filter(pk=trigger_id).first()
        if trigger is None:
            _schedules().filter(name=trigger_schedule_name(trigger_id)).delete()
            return "trigger gone: schedule removed"
        due = trigger.next_run_at
        if not trigger.enabled or due is None or due > now:
            arm(trigger, now)
            return "not due: re-armed"
        latest, count = triggers.latest_due(trigger, due, now)
        # Exactly once per due time: the fire is recorded only if nobody advanced next_run_at meanwhile (on
        # SQLite, whose select_for_update locks nothing, this conditional update is the guard).
        if not Trigger.objects.filter(pk=trigger.pk, next_run_at=due).update(last_fired_at=now):
            return "already fired"
        arm(trigger, now)
        return start(trigger, latest, count, now, reserve)


def _local(instant, trigger):
    return instant.astimezone(triggers.zone_of(trigger)).strftime("%Y-%m-%d %H:%M:%S %Z")


def start(trigger, due, count, now, reserve=0):
    """Start what the trigger starts, for the fire time `due`, applying the missed-runs policy. A system job is
    returned as (job id, due) for the caller to run once the trigger's transaction is over."""
    late = now - due
    missed = late > misfire_grace() + datetime.timedelta(seconds=min(trigger.jitter_seconds,
                                                                     triggers.MAX_JITTER_SECONDS))
    notes = []
    if count > 1:
        more = "or more " if count >= 1000 else ""
        notes.append(f"{count - 1} {more}earlier start(s) of this trigger were missed; it starts once, "
                     f"never once per missed time")
    if missed:
        notes.append(f"Due at {_local(due, trigger)} but the scheduler only got to it "
                     f"{int(late.total_seconds())} s later (the portal was down or busy)")
    if trigger.system_job_id:
        if not trigger.system_job.active:
            return f"job {trigger.system_job} is inactive"
        return trigger.system_job_id, due
    project = trigger.project
    if not project.enabled:
        logger.info("Trigger %s fired for disabled project %s: nothing started", trigger.pk, project)
        return "project disabled"
    if missed and project.missed_runs == Project.MissedRuns.SKIP:
        reason = "Missed start skipped (project policy): " + "; ".join(notes)
        runs = orchestration.record_missed(project, trigger, due, reason, now)
        return f"missed: {len(runs)} run(s) recorded as skipped"
    note = "; ".join(notes + (["running once now (project policy)"] if missed else [])) or None
    runs = orchestration.start_project(project, Run.Trigger.SCHEDULE, trigger_source=trigger,
                                       scheduled_for=due, note=note, now=now, reserve=reserve)
    queued = sum(run.status == Run.Status.QUEUED for run in runs)
    return f"started {queued} run(s)" + (f", {len(runs) - queued} skipped" if len(runs) > queued else "")


# --- reschedule and clean-up -----------------------------------------------------------------------------

def reschedule(project=None, task=None, now=None):
    """Remove every schedule the portal made for the project (or the task's project and its pending retries)
    and recreate them from the triggers. Returns how many schedules exist afterwards."""
    now = now or clock()
    project = project or task.project
    made = 0
    with transaction.atomic():
        project_triggers = list(Trigger.objects.filter(project=project).select_related("project"))
        _schedules().filter(name__in=[trigger_schedule_name(t.pk) for t in project_triggers]).delete()
        for trigger in project_triggers:
            made += arm(trigger, now) is not None
        tasks = [task] if task is not None else list(project.tasks.all())
        for each in tasks:
            for retry in orchestration.pending_retries(each).exclude(not_before=None):
                queueing.schedule_retry(retry)
                made += 1
    return made


def reschedule_all(now=None):
    """Every trigger (projects and system jobs), every pending retry; orphans removed."""
    now = now or clock()
    made = 0
    with transaction.atomic():
        _schedules().filter(name__startswith=PREFIX).delete()
        for trigger in Trigger.objects.select_related("project", "system_job"):
            made += arm(trigger, now) is not None
        for retry in Run.objects.filter(status=Run.Status.QUEUED, trigger=Run.Trigger.RETRY).exclude(
                not_before=None):
            queueing.schedule_retry(retry)
            made += 1
        ensure_portal_schedules()
    return made


def cleanup_orphan_schedules(now=None):
    """Remove schedules whose trigger (project, system job) or retry run is gone or no longer needs one; put
    back a missing schedule of an enabled trigger. Returns a sentence for the job's result."""
    now = now or clock()
    removed = restored = 0
    seen = set()
    for schedule in _schedules().filter(name__startswith=PREFIX).order_by("id"):
        match = re.fullmatch(r"etl:(trigger|retry):(\d+)", schedule.name or "")
        key = schedule.name
        if match and match.group(1) == "trigger":
            trigger = Trigger.objects.filter(pk=int(match.group(2)), enabled=True).first()
            keep = trigger is not None and key not in seen
        elif match:
            keep = key not in seen and Run.objects.filter(pk=int(match.group(2)), status=Run.Status.QUEUED).exists()
        else:
            keep = True  # a schedule an operator named with the prefix by hand: not ours to judge
        if keep:
            seen.add(key)
        else:
            schedule.delete()
            removed += 1
    for trigger in Trigger.objects.filter(enabled=True).select_related("project", "system_job"):
        if trigger_schedule_name(trigger.pk) not in seen and arm(trigger, now) is not None:
            restored += 1
    ensure_portal_schedules()
    return f"{removed} orphan schedule(s) removed, {restored} missing schedule(s) restored"


# --- pages and commands ------------------------------------------------------------------------------------

def upcoming(trigger, count=10, after=None, zone=None):
    """The next fire times as rows for a page: local time, UTC offset, and whether the offset changed."""
    after = after or clock()
    zone = zone or triggers.zone_of(trigger)
    rows, previous = [], None
    for instant in triggers.next_fire_times(trigger, after, count):
        local = instant.astimezone(zone)
        offset = local.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}"
        rows.append({"utc": instant, "local": local, "text": local.strftime("%a %Y-%m-%d %H:%M:%S"),
                     "offset": offset, "abbreviation": local.tzname(),
                     "changed": previous is not None and offset != previous, "previous_offset": previous})
        previous = offset
    return rows


# --- signals ------------------------------------------------------------------------------------------------

def _trigger_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        arm(instance)


def _trigger_deleted(sender, instance, **kwargs):
    _schedules().filter(name=trigger_schedule_name(instance.pk)).delete()


def _project_saved(sender, instance, raw=False, created=False, **kwargs):
    if not raw and not created:
        for trigger in instance.triggers.all():
            arm(trigger)  # the project's time zone may have changed


def connect_signals():
    post_save.connect(_trigger_saved, sender=Trigger, dispatch_uid="etl-trigger-saved")
    post_delete.connect(_trigger_deleted, sender=Trigger, dispatch_uid="etl-trigger-deleted")
    post_save.connect(_project_saved, sender=Project, dispatch_uid="etl-project-saved")
