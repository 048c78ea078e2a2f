"""What the dashboard (the home page) shows a user, read from what they may see (the querysets' `visible_to`
and `Run.objects.listed_for`, the roles of projects/access.py): the last 24 hours' failed and warning runs, the
runs going and waiting, the next 24 hours' scheduled starts, the connections that failed their last test, the
tasks still failing (for "Run all errored") and the day's timeline. A bounded number of queries, whatever the
number of runs."""
import datetime
import heapq

from django.conf import settings
from django.db.models import Count, Prefetch, Q, prefetch_related_objects

from connections.models import Connection
from projects import triggers
from projects.models import Project, Trigger
from runs import charts
from runs.models import Run
from tasks.models import Task

DAY = datetime.timedelta(hours=24)
LINE_FIELDS = ("pk", "task_id", "status", "trigger", "attempt", "error", "created_at", "started_at", "finished_at",
               "not_before")
LISTED = 20  # rows per section; the counts say how many in all, the runs page lists them
SHOWN_FIRST = (Run.Status.FAILED, Run.Status.WARNING, Run.Status.RUNNING)
TIMELINE_TASKS = 40  # timeline rows: the tasks whose runs went worst first, then the latest started


def errored_runs(user):
    """The latest run of each enabled task (of an enabled project) the user sees whose latest run failed: what
    "Run all errored" reruns (each for its own date)."""
    tasks = Task.objects.visible_to(user).filter(enabled=True, project__enabled=True)
    return Run.objects.latest_failed(tasks)


def upcoming_starts(user, now, limit=LISTED):
    """The scheduled starts of the next 24 hours, soonest first: (time, project, trigger); at most `limit`.

    Each trigger's next time is the one arming stored (`next_run_at`); the times after it are worked out as the
    scheduler does (projects/triggers.py) only for the triggers whose starts are listed. The `limit` soonest
    triggers hold the `limit` soonest starts."""
    until = now + DAY
    soon = (Trigger.objects.filter(project__in=_projects(user), project__enabled=True, enabled=True,
                                   next_run_at__lte=until).select_related("project").order_by("next_run_at")[:limit])
    heap = [(trigger.next_run_at, trigger.pk, trigger) for trigger in soon]
    heapq.heapify(heap)
    starts = []
    while heap and len(starts) < limit:
        moment, _, trigger = heapq.heappop(heap)
        starts.append({"at": moment, "project": trigger.project, "trigger": trigger})
        following = triggers.next_fire_time(trigger, moment)
        if following is not None and following <= until:
            heapq.heappush(heap, (following, trigger.pk, trigger))
    return starts


def _projects(user):
    return Project.objects.visible_to(user).values("pk")


def overview(user, now):
    seen = Run.objects.listed_for(user)
    runs = seen.only(*LINE_FIELDS)
    since = now - DAY
    # Ended in the last 24 h; and so started at most a run timeout before, which lets the (status, started_at)
    # index find them.
    problems = runs.filter(status__in=(Run.Status.FAILED, Run.Status.WARNING), finished_at__gte=since,
                           started_at__gte=since - datetime.timedelta(seconds=settings.ETL_RUN_TIMEOUT))
    counts = problems.aggregate(failed=Count("pk", filter=Q(status=Run.Status.FAILED)),
                                warning=Count("pk", filter=Q(status=Run.Status.WARNING)))
    waiting = runs.filter(status__in=(Run.Status.RUNNING, Run.Status.QUEUED))
    going = waiting.aggregate(running=Count("pk", filter=Q(status=Run.Status.RUNNING)),
                              queued=Count("pk", filter=Q(status=Run.Status.QUEUED)))
    lists = {
        "problems": list(problems.order_by("-finished_at", "-id")[:LISTED]),
        # By id (the order they were queued, near enough the order they started): the status index gives it.
        "running": list(runs.filter(status=Run.Status.RUNNING).order_by("id")[:LISTED]),
        "queued": list(runs.filter(status=Run.Status.QUEUED).order_by("priority", "id")[:LISTED]),
    }
    # The three lists' tasks and projects in two queries, with the columns shown; not joined to the runs: with the
    # joins SQLite starts from the tasks and reads every run (see views_runs.run_list).
    prefetch_related_objects([run for shown in lists.values() for run in shown],
                             Prefetch("task", Task.objects.only("pk", "name", "project_id", "retries")),
                             Prefetch("task__project", Project.objects.only("pk", "name")))
    return {
        "now": now,
        "since": since,
        **lists,
        "failed_count": counts["failed"],
        "warning_count": counts["warning"],
        "running_count": going["running"],
        "queued_count": going["queued"],
        "upcoming": upcoming_starts(user, now),
        "broken_connections": list(Connection.objects.visible_to(user).filter(last_test_ok=False)
                                   .select_related("organization").order_by("name")[:LISTED]),
        "timeline": day_timeline(seen, now),
    }


def day_timeline(runs, now):
    """The timeline of the last 24 hours: the runs started in it (`runs`: those the user sees), by task. (A run
    still going started within the day: the run timeout is at most six hours by default, and the reaper ends a
    run whose worker died.)"""
    start = now - DAY
    window = runs.filter(started_at__gte=start)
    # Which tasks get a row: those with a failure first, then a warning, then running, then the rest; the latest
    # started first within each. Read in two steps, the second only when the first leaves rows free, and grouped
    # here: SQLite groups a GROUP BY along the task index, through every run ever made.
    rank = {status: position for position, status in enumerate(SHOWN_FIRST)}
    tasks = {}
    for chosen in (window.filter(status__in=SHOWN_FIRST), window.exclude(status__in=SHOWN_FIRST)):
        if len(tasks) > TIMELINE_TASKS:
            break
        for task_id, status, run_id in chosen.order_by().values_list("task_id", "status", "id"):
            tasks[task_id] = min(tasks.get(task_id, (len(SHOWN_FIRST), 0)), (rank.get(status, len(SHOWN_FIRST)),
                                                                               -run_id))
    shown = sorted(tasks, key=tasks.get)[:TIMELINE_TASKS]
    names = {task["pk"]: f"{task['project__name']} / {task['name']}" for task in
             Task.objects.filter(pk__in=shown).values("pk", "name", "project__name")}
    bars = window.filter(task_id__in=shown).values("id", "task_id", "status", "started_at", "finished_at")
    drawing = charts.timeline([(task_id, names.get(task_id, "")) for task_id in shown], bars, start, now)
    drawing["more"] = len(tasks) > TIMELINE_TASKS
    return drawing
