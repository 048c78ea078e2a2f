"""Order and reactions between runs: project starts (series or parallel), which queued run starts next, retries,
dependencies between tasks (also across projects), and cancelling.

Series: a project start queues a run for each enabled task (run rank, then name) that no dependency starts; each
waits for the one before it (`upstream_run`). When one fails after its retries, the rest are recorded
"Skipped (upstream failed)". Parallel: all start together, at most `project.max_parallel` at once.

Which queued run starts next (`claim_next`): the best priority, then the oldest, of those no limit holds back: a
series predecessor, the task's max instances, a parallel project's max parallel, a connection with no free run slot
(runs/pools.py, counted under the connection's row lock), a connection in a maintenance window (runs/windows.py)
and a backfill batch's dates at once (`in_turn`). A scheduled start of a task whose run already waits for a
maintenance window is folded into that run (`start_project`): one run, not one per missed trigger.

Dependencies: when a task's run ends for good (after its retries), each task downstream of it is decided from the
latest outcome of each of its upstream tasks since its own last run: with ALL it runs when every condition holds
and is skipped when all upstreams ended and one does not hold; with ANY it runs as soon as one holds and is
skipped when all ended and none holds. Succeeded and warning count as success; a cancelled or skipped upstream
satisfies no condition, so a branch that does not apply is recorded as skipped all the way down.
"""
import datetime
import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from projects.models import Project
from runs import pools, queueing, windows
from runs.durable import durable
from runs.models import Backfill, Run
from tasks.models import MAX_RETRY_DELAY_SECONDS, Dependency, Task

logger = logging.getLogger(__name__)
SUCCESS = (Run.Status.SUCCEEDED, Run.Status.WARNING)
UNFINISHED = (Run.Status.QUEUED, Run.Status.RUNNING)
CANDIDATES = 200  # queued runs examined per claim, best first
BACKFILL_WAKE_LIMIT = 20  # workers woken at once for a backfill's next dates


class Refused(Exception):
    """An operator action that cannot be done now; the message says why in plain words."""


# --- starting projects ---------------------------------------------------------------------------------------

def root_tasks(project):
    """Enabled tasks a project start runs: those no dependency starts, in run order."""
    return list(project.tasks.filter(enabled=True, upstream_links__isnull=True).order_by("run_rank", "name"))


def busy(task):
    return task.runs.filter(status__in=UNFINISHED).count() >= max(1, task.max_instances)


def skip(task, reason, trigger, now=None, **fields):
    return Run.objects.create_skipped(task, reason, trigger, now, **fields)


def start_project(project, trigger=Run.Trigger.MANUAL, user=None, trigger_source=None, scheduled_for=None,
                  note=None, now=None, reserve=0, backfill=None):
    """Queue one start of the project; return its runs (queued, or skipped when a task is still running).

    `reserve`: how many of the startable runs the caller (already on a worker) executes itself. With `backfill`
    (one date of a batch, runs/backfill.py) every task is queued, busy or not: the batch's runs wait their turn
    at the claim, and the caller wakes the workers.
    """
    now = now or timezone.now()
    scheduled_for = scheduled_for or now
    series = project.mode == project.Mode.SERIES
    runs, previous = [], None
    folding = Folding(trigger_source, scheduled_for, now) if trigger == Run.Trigger.SCHEDULE and backfill is None \
        else None
    with transaction.atomic():
        for task in root_tasks(project):
            common = {"trigger_source": trigger_source, "scheduled_for": scheduled_for, "requested_by": user,
                      "backfill": backfill}
            waiting = folding.fold(task) if folding else None
            if waiting is not None:
                previous = waiting if series else previous
                continue
            if backfill is None and busy(task):
                reason = (f"Skipped: still running from an earlier start (at most {max(1, task.max_instances)} "
                          f"at once)")
                runs.append(skip(task, reason, trigger, now, **common))
                logger.info("%s: %s", task, reason)
                continue
            run = Run.objects.create(task=task, trigger=trigger, priority=task.priority,
                                     upstream_run=previous if series else None, **common)
            run.log(f"Queued ({run.get_trigger_display().lower()}"
                    f"{' by ' + user.username if user else ''}{' by ' + str(trigger_source) if trigger_source else ''}"
                    f"{', after ' + previous.task.name if series and previous else ''})")
            if note:
                run.log(note, level="warning")
            runs.append(run)
            previous = run if series else previous
        queued = [run for run in runs if run.status == Run.Status.QUEUED]
        if backfill is None:
            queueing.submit(max(0, (1 if series and queued else len(queued)) - reserve))
    return runs


class Folding:
    """A scheduled start of a task whose queued run still waits for a maintenance window (runs/windows.py) is
    folded into that run instead of queueing another: one run, however many times the trigger fires meanwhile.
    A series successor still queued behind a folded run is folded into its own queued run the same way."""

    def __init__(self, trigger_source, scheduled_for, now):
        self.trigger_source, self.scheduled_for, self.now = trigger_source, scheduled_for, now
        self.windows = windows.Windows(now)
        self.held, self.folded = set(self.windows.held_tasks()), set()

    def fold(self, task):
        """The queued run this start was folded into (logged on it), or None to start the task as usual."""
        if not self.held and not self.folded:
            return None
        waiting = task.runs.filter(status=Run.Status.QUEUED, backfill__isnull=True).order_by("id").first()
        if waiting is None or not (task.pk in self.held or waiting.upstream_run_id in self.folded):
            return None
        self.folded.add(waiting.pk)
        what = f"{self.trigger_source}" if self.trigger_source else "a trigger"
        names = ", ".join(connection.name for connection, _ in windows.waiting_for_window(waiting, self.now))
        reason = f"the maintenance window of {names}" if names else "the run before it"
        waiting.log(f"Start by {what} due {self.scheduled_for:%Y-%m-%d %H:%M:%S %Z} folded into this run: it still "
                    f"waits for {reason}")
        logger.info("%s: scheduled start folded into queued run %s (waiting for %s)", task, waiting.pk, reason)
        return waiting


def record_missed(project, trigger_source, scheduled_for, reason, now=None):
    """Skip policy: one skipped run per task says the start was missed; nothing runs."""
    return [skip(task, reason, Run.Trigger.SCHEDULE, now, trigger_source=trigger_source,
                 scheduled_for=scheduled_for) for task in root_tasks(project)]


# --- which queued run starts next ------------------------------------------------------------------------------

def chain_outcome(run):
    """Status of the latest attempt of `run` (its retries included)."""
    root = run.first_attempt_id or run.pk
    latest = Run.objects.filter(Q(pk=root) | Q(first_attempt=root)).order_by("-attempt", "-id").first()
    return latest.status if latest else None


def startable(now=None):
    """Queued runs whose time has come and whose series predecessor is not still queued or running."""
    now = now or timezone.now()
    return (Run.objects.filter(status=Run.Status.QUEUED).exclude(not_before__gt=now)
            .exclude(Q(upstream_run__status__in=UNFINISHED) & ~Q(trigger=Run.Trigger.DEPENDENCY)))


def backfill_dates_open():
    """{backfill id: the dates (scheduled_for) whose runs may start}: of each batch's dates with a run not ended
    yet, the earliest `max_dates`. Dates only leave that list (a batch makes no new date after it started), so a
    date allowed once stays allowed until it is done and no lock is needed."""
    rows = (Run.objects.filter(status__in=UNFINISHED, backfill__isnull=False)
            .values_list("backfill_id", "scheduled_for", "backfill__max_dates").distinct()
            .order_by("backfill_id", "scheduled_for"))
    open_dates = {}
    for backfill_id, moment, max_dates in rows:
        dates = open_dates.setdefault(backfill_id, [])
        if len(dates) < max(1, max_dates):
            dates.append(moment)
    return open_dates


def in_turn(runs, open_dates=None):
    """`runs` without the backfill runs whose date's turn has not come (see `backfill_dates_open`)."""
    open_dates = backfill_dates_open() if open_dates is None else open_dates
    allowed = Q(backfill__isnull=True)
    for backfill_id, dates in open_dates.items():
        allowed |= Q(backfill_id=backfill_id, scheduled_for__in=dates)
    return runs.filter(allowed)


def claimable(now=None):
    """Startable runs that no limit holds back before the claim looks at them: a backfill date's turn, a full
    connection pool (runs/pools.py), a maintenance window (runs/windows.py). What `kick_stalled_runs` wakes
    workers for, so a run held by a window is woken within a second or two of the window's end."""
    running = {}
    for task_id in Run.objects.filter(status=Run.Status.RUNNING).values_list("task_id", flat=True):
        running[task_id] = running.get(task_id, 0) + 1
    held = pools.Pools(running).blocked_tasks() + windows.Windows(now).held_tasks()
    return in_turn(startable(now)).exclude(task_id__in=held)


def claim_next(worker, now=None):
    """Claim the best run that may start now (priority 1 first, then oldest); None when there is none."""
    for _ in range(10):
        claimed, raced = _claim_best(worker, now)
        if claimed or not raced:
            return claimed
    return None


def _claim_best(worker, now):
    """(claimed run id or None, whether another worker took a run first: then the list is read again)."""
    raced = False
    by_task, by_project = {}, {}
    for task_id, project_id in Run.objects.filter(status=Run.Status.RUNNING).values_list("task_id",
                                                                                          "task__project_id"):
        by_task[task_id] = by_task.get(task_id, 0) + 1
        by_project[project_id] = by_project.get(project_id, 0) + 1
    # Connection pools: runs of tasks needing a full connection are left out here (so a long line of them never
    # fills the candidates), and each claim counts its connections' slots again under their lock.
    pool = pools.Pools(by_task)
    # Maintenance windows: the same, tasks using a connection in a window are left out and each claim reads the
    # windows again inside its transaction.
    maintenance = windows.Windows(now)
    held = pool.blocked_tasks() + maintenance.held_tasks()
    # Plain values, not model instances: this runs for every queued run, so it stays cheap.
    candidates = in_turn(startable(now)).exclude(task_id__in=held).order_by("priority", "id") \
        .values_list("pk", "task_id", "task__max_instances", "task__project_id", "task__project__mode",
                     "task__project__max_parallel", "upstream_run_id", "trigger")[:CANDIDATES]
    for pk, task_id, max_instances, project_id, mode, max_parallel, upstream_id, trigger in candidates:
        parallel = mode == Project.Mode.PARALLEL
        if by_task.get(task_id, 0) >= max(1, max_instances) or (
                parallel and by_project.get(project_id, 0) >= max(1, max_parallel)):
            continue  # held back by its limits (counted again under the lock before claiming)
        if upstream_id and trigger != Run.Trigger.DEPENDENCY and \
                chain_outcome(Run(pk=upstream_id)) not in SUCCESS + (Run.Status.SKIPPED,):
            continue  # a series run whose predecessor has not succeeded yet
        with transaction.atomic():
            if connection.features.has_select_for_update:
                # The project's row lock makes counting and claiming one step for concurrent workers (SQLite's
                # write lock already does).
                Project.objects.select_for_update().filter(pk=project_id).exists()
            # The candidate itself is left out: if another worker took it meanwhile, the claim below fails.
            running = Run.objects.filter(status=Run.Status.RUNNING, task__project=project_id).exclude(pk=pk) \
                .aggregate(task=Count("id", filter=Q(task=task_id)), project=Count("id"))
            if running["task"] >= max(1, max_instances) or (parallel and running["project"] >= max(1, max_parallel)):
                continue
            if not pool.slot_free(task_id, pk):
                continue  # a connection it needs has no free slot (counted under the connection's lock)
            if not maintenance.open_for(task_id):
                continue  # a window of a connection it uses began since the candidates were read
            if Run.objects.claim(pk, worker):
                return pk, raced
            raced = True
    return None, raced


# --- after a run ends ----------------------------------------------------------------------------------------

def retry_delay(task, attempt):
    """Seconds before attempt `attempt + 1`: the task's delay, doubled per attempt with back-off, capped."""
    delay = task.retry_delay_seconds
    if task.retry_backoff:
        delay = delay * (2 ** (attempt - 1))
        if task.retry_max_delay_seconds:
            delay = min(delay, task.retry_max_delay_seconds)
    # Back-off without a cap doubles past what a datetime can hold after some 40 attempts: never wait longer
    # than the longest delay a user may type.
    return min(delay, MAX_RETRY_DELAY_SECONDS)


def schedule_retry(run, now=None):
    """Queue the next attempt of a failed run when the task allows one; return it (or None). Idempotent: a failed
    attempt has at most one retry (`Run.retry_of` is unique), so a second call returns the first one's."""
    task = run.task.with_effective_settings()  # retries and back-off as the levels set them
    if run.attempt > task.retries or run.status != Run.Status.FAILED:
        return None
    existing = Run.objects.filter(retry_of=run).first()
    if existing:
        return existing
    if run.backfill_id and Backfill.objects.filter(pk=run.backfill_id, cancelled_at__isnull=False).exists():
        return None  # its batch was cancelled: no new attempt
    now = now or timezone.now()
    delay = retry_delay(task, run.attempt)
    first = run.first_attempt or run
    try:
        with transaction.atomic():
            retry = Run.objects.create(
                task=task, trigger=Run.Trigger.RETRY, attempt=run.attempt + 1, first_attempt=first, retry_of=run,
                requested_by=run.requested_by, scheduled_for=run.scheduled_for, priority=task.priority,
                trigger_source=run.trigger_source, upstream_run=run.upstream_run, backfill_id=run.backfill_id,
                not_before=now + datetime.timedelta(seconds=delay) if delay else None)
    except IntegrityError:  # another writer (the reaper, a late worker) created it a moment ago
        return Run.objects.get(retry_of=run)
    retry.log(f"Retry {run.attempt} of {task.retries} after run #{run.pk} failed"
              f"{f'; waits {delay} s' if delay else ''}")
    run.log(f"Retry queued as run #{retry.pk}{f' in {delay} s' if delay else ''}")
    if delay:
        queueing.schedule_retry(retry)
    else:
        queueing.submit(hint=retry.pk)
    return retry


def after_run_safely(run, now=None):
    """`after_run` for workers and the reaper: logged, never raised; retried with a fresh connection while the app
    database restarts (each of its steps is conditional: a retry, a skip, a wake-up happens once)."""
    try:
        durable(lambda: after_run(run, now=now))
    except Exception:
        logger.exception("Could not decide what follows run %s", run.pk)


def after_run(run, now=None, outcome=None):
    """Retry, release or skip what waits on `run`, start dependent tasks, and free its worker slot."""
    if not run.is_finished:
        run.refresh_from_db()
        if not run.is_finished:
            return
    if outcome is None and schedule_retry(run, now):
        return
    outcome = outcome or run.status
    root_id = run.first_attempt_id or run.pk
    # One look at the project's queued runs: series successors of this run, and runs held back by its limits.
    queued = list(Run.objects.filter(task__project=run.task.project_id, status=Run.Status.QUEUED)
                  .exclude(not_before__gt=now or timezone.now()))
    waiting = [r for r in queued if r.upstream_run_id == root_id and r.trigger != Run.Trigger.DEPENDENCY]
    if outcome in SUCCESS + (Run.Status.SKIPPED,):
        queueing.submit(len(waiting))
    else:
        word = "failed" if outcome == Run.Status.FAILED else "cancelled"
        for successor in waiting:
            skip_waiting(successor, f"Skipped (upstream failed): {run.task.name} {word}", now)
    decide_downstream(run.task, now)
    # A run of the project held back by max_parallel / max_instances may start now: wake one worker for it (its
    # own django-q2 message may have been used by a worker that found it held back).
    if any(r not in waiting and (r.upstream_run_id is None or r.trigger == Run.Trigger.DEPENDENCY) for r in queued):
        queueing.submit(1)
    wake_waiting(run, now)


def wake_waiting(run, now=None):
    """Runs elsewhere that waited on what `run` held: a slot of a capped connection (runs/pools.py), the next
    date of its backfill batch. Each gets a worker (one per freed slot; for a backfill, its runs now in turn)."""
    if pools.queued_behind(run.task_id):
        queueing.submit(1)
    if run.backfill_id:
        in_turn_now = in_turn(startable(now).filter(backfill_id=run.backfill_id)).count()
        queueing.submit(min(in_turn_now, BACKFILL_WAKE_LIMIT))


def skip_waiting(run, reason, now=None):
    """Mark a queued run skipped, and everything waiting on it, and decide its dependants."""
    now = now or timezone.now()
    if run.skip_queued(reason, now):
        for successor in Run.objects.filter(upstream_run=run, status=Run.Status.QUEUED):
            skip_waiting(successor, reason, now)
        decide_downstream(run.task, now)


def _link_state(link, since):
    """"yes", "no" (with the reason) or "pending" for one upstream condition of a downstream task."""
    runs = link.upstream.runs.all()
    if since is not None:
        runs = runs.filter(created_at__gt=since)
    latest = runs.order_by("-id").first()
    if latest is None or not latest.is_finished:
        return "pending", None
    status = latest.status
    if status == Run.Status.CANCELLED and latest.trigger == Run.Trigger.RETRY and not latest.started_at:
        status = Run.Status.FAILED  # its retries were cancelled: the task ended failed
    holds = {"success": status in SUCCESS, "failure": status == Run.Status.FAILED,
             "completion": status in SUCCESS + (Run.Status.FAILED,)}[link.on]
    return ("yes", latest) if holds else ("no", f"{link.upstream.name} {latest.get_status_display().lower()} "
                                                 f"(runs {link.get_on_display().lower()})")


def decide_downstream(task, now=None):
    for link in Dependency.objects.filter(upstream=task).select_related("downstream"):
        with transaction.atomic():
            downstream = Task.objects.select_for_update().get(pk=link.downstream_id)
            _decide(downstream, now)


def _decide(task, now):
    last = task.runs.order_by("-id").first()
    since = last.created_at if last else None
    states = [(link, *_link_state(link, since)) for link in task.upstream_links.select_related("upstream")]
    if not states:
        return None
    held = [detail for _, state, detail in states if state == "yes"]
    pending = any(state == "pending" for _, state, _ in states)
    reasons = [detail for _, state, detail in states if state == "no"]
    if task.dependency_mode == task.DependencyMode.ANY:
        run_it, skip_it = bool(held), not held and not pending
    else:
        run_it, skip_it = not pending and not reasons, not pending and bool(reasons)
    if not (run_it or skip_it):
        return None
    source = (held or [None])[-1]
    common = {"upstream_run": source, "scheduled_for": source.scheduled_for if source else now or timezone.now(),
              "backfill_id": source.backfill_id if source else None}
    if skip_it:
        run = skip(task, "Skipped: " + "; ".join(reasons), Run.Trigger.DEPENDENCY, now, **common)
        after_run(run, now)
        return run
    if not task.enabled:
        logger.info("%s is disabled: not started by its dependencies", task)
        return None
    if busy(task):
        run = skip(task, f"Skipped: still running from an earlier start (at most {max(1, task.max_instances)} "
                         f"at once)", Run.Trigger.DEPENDENCY, now, **common)
        return run
    run = queueing.enqueue_run(task, Run.Trigger.DEPENDENCY, **common)
    run.log(f"Started because {', '.join(f'{r.task.name} {r.get_status_display().lower()}' for r in held)}")
    return run


# --- cycles ------------------------------------------------------------------------------------------------

def validate_no_cycle(upstream, downstream):
    """Refuse a dependency upstream -> downstream that would close a loop; the message names the loop."""
    up_id = getattr(upstream, "pk", upstream)
    down_id = getattr(downstream, "pk", downstream)
    names = dict(Task.objects.filter(pk__in=[up_id, down_id]).values_list("pk", "name"))
    if up_id == down_id:
        raise ValidationError(f"A task cannot depend on itself ({names.get(up_id, up_id)}).")
    edges = {}
    for source, target in Dependency.objects.values_list("upstream_id", "downstream_id"):
        edges.setdefault(source, []).append(target)
    # A path downstream -> ... -> upstream plus the new link is a cycle.
    parents, frontier = {down_id: None}, [down_id]
    while frontier and up_id not in parents:
        node = frontier.pop(0)
        for target in edges.get(node, []):
            if target not in parents:
                parents[target] = node
                frontier.append(target)
    if up_id not in parents:
        return
    path, node = [], up_id
    while node is not None:
        path.append(node)
        node = parents[node]
    path.reverse()  # downstream ... upstream
    names.update(Task.objects.filter(pk__in=path).values_list("pk", "name"))
    loop = " → ".join(names[pk] for pk in [up_id] + path)
    raise ValidationError(f"This dependency would create a cycle: {loop}. Remove one of these links first.")


def find_cycle(task):
    """A loop of dependencies through `task` as saved now ([A, B, ..., A]), or None."""
    edges = {}
    for source, target in Dependency.objects.values_list("upstream_id", "downstream_id"):
        edges.setdefault(source, []).append(target)
    parents, frontier = {}, [task.pk]
    while frontier:
        node = frontier.pop(0)
        for target in edges.get(node, []):
            if target == task.pk:
                path = [node]
                while path[-1] != task.pk:
                    path.append(parents[path[-1]])
                ids = [task.pk] + path[::-1][1:] + [task.pk] if len(path) > 1 else [task.pk, task.pk]
                names = Task.objects.in_bulk(set(ids))
                return [names[pk] for pk in ids]
            if target not in parents:
                parents[target] = node
                frontier.append(target)
    return None


# --- cancelling --------------------------------------------------------------------------------------------

def cancel_run(run, user=None, now=None):
    """Cancel a queued run at once, or ask a running one to stop; return a sentence for the operator."""
    who = f" by {user.username}" if user else ""
    now = now or timezone.now()
    if run.cancel_queued(f"Cancelled{who} before it started", now):
        queueing.remove_retry_schedule(run)
        after_run(run, now, outcome=Run.Status.CANCELLED)
        return f"Run #{run.pk} was cancelled before it started."
    if run.request_cancel():
        run.log(f"Cancel requested{who}: stopping the run", level="warning")
        return f"Run #{run.pk} is being stopped."
    run.refresh_from_db()
    raise Refused(f"Run #{run.pk} already ended ({run.get_status_display().lower()}); there is nothing to cancel.")


def pending_retries(task):
    return task.runs.filter(status=Run.Status.QUEUED, trigger=Run.Trigger.RETRY)


def cancel_retries(task, user=None, now=None):
    """Stop the pending retries of a failed task. Refused while the task is running."""
    if task.runs.filter(status=Run.Status.RUNNING).exists():
        raise Refused(f"{task.name} is running: its retries cannot be cancelled now. Cancel the run instead, "
                      f"or wait for it to end.")
    now = now or timezone.now()
    who = f" by {user.username}" if user else ""
    cancelled = 0
    for retry in pending_retries(task):
        if retry.cancel_queued(f"Retry cancelled{who}", now):
            queueing.remove_retry_schedule(retry)
            after_run(retry, now, outcome=Run.Status.FAILED)
            cancelled += 1
    if not cancelled:
        raise Refused(f"{task.name} has no pending retry.")
    return f"{cancelled} pending retr{'y' if cancelled == 1 else 'ies'} of {task.name} cancelled."
