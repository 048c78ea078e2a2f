"""What the dashboard (the home page) shows a user, read from what they may see (projects/access.py decides
through the querysets' `visible_to`): the last 24 hours' failed and warning runs, the runs going and waiting,
the next 24 hours' scheduled starts, the connections that failed their last test, the tasks still failing (for
"Run all errored") and the day's timeline. A bounded number of queries, whatever the number of runs."""
import datetime
import heapq
import itertools

from django.db.models import Case, Count, IntegerField, Max, Q, When

from connections.models import Connection
from projects import triggers
from projects.models import Trigger
from runs import charts
from runs.models import Run
from tasks.models import Task

DAY = datetime.timedelta(hours=24)
LISTED = 50  # rows per section; the section links to the runs page for the rest
TIMELINE_TASKS = 40  # timeline rows: the tasks whose runs went worst first, then the latest started
WORST = Case(When(status=Run.Status.FAILED, then=4), When(status=Run.Status.WARNING, then=3),
             When(status=Run.Status.RUNNING, then=2), default=1, output_field=IntegerField())


def errored_runs(user):
    """The latest run of each enabled task (of an enabled project) the user sees whose latest run failed: what
    "Run all errored" reruns (each for its own date)."""
    tasks = Task.objects.visible_to(user).filter(enabled=True, project__enabled=True)
    return Run.objects.latest_failed(tasks)


def upcoming_starts(user, now, limit=LISTED):
    """The scheduled starts of the next 24 hours, soonest first: (time, project, trigger); at most `limit`."""
    until = now + DAY
    soon = (Trigger.objects.filter(project__in=_projects(user), project__enabled=True, enabled=True,
                                   next_run_at__lte=until).select_related("project"))
    # Each trigger's fire times (projects/triggers.py, as the scheduler computes them), merged in time order.
    times = heapq.merge(*[((moment, trigger.pk, trigger) for moment in triggers.fire_times(trigger, now))
                          for trigger in soon])
    starts = itertools.takewhile(lambda item: item[0] <= until, times)
    return [{"at": moment, "project": trigger.project, "trigger": trigger}
            for moment, _, trigger in itertools.islice(starts, limit)]


def _projects(user):
    from projects.models import Project

    return Project.objects.visible_to(user).values("pk")


def overview(user, now):
    runs = Run.objects.visible_to(user).select_related("task__project")
    since = now - DAY
    problems = runs.filter(status__in=(Run.Status.FAILED, Run.Status.WARNING), finished_at__gte=since)
    counts = problems.aggregate(failed=Count("pk", filter=Q(status=Run.Status.FAILED)),
                                warning=Count("pk", filter=Q(status=Run.Status.WARNING)))
    waiting = runs.filter(status__in=(Run.Status.RUNNING, Run.Status.QUEUED))
    going = waiting.aggregate(running=Count("pk", filter=Q(status=Run.Status.RUNNING)),
                              queued=Count("pk", filter=Q(status=Run.Status.QUEUED)))
    return {
        "now": now,
        "since": since,
        "problems": list(problems.order_by("-finished_at", "-id")[:LISTED]),
        "failed_count": counts["failed"],
        "warning_count": counts["warning"],
        "running": list(runs.filter(status=Run.Status.RUNNING).order_by("started_at", "id")[:LISTED]),
        "running_count": going["running"],
        "queued": list(runs.filter(status=Run.Status.QUEUED).order_by("priority", "id")[:LISTED]),
        "queued_count": going["queued"],
        "upcoming": upcoming_starts(user, now),
        "broken_connections": list(Connection.objects.visible_to(user).filter(last_test_ok=False)
                                   .select_related("organization").order_by("name")[:LISTED]),
        "errored_count": errored_runs(user).count(),
        "timeline": day_timeline(user, now),
    }


def day_timeline(user, now):
    """The timeline of the last 24 hours: the runs started in it and those still running, by task."""
    start = now - DAY
    window = Run.objects.visible_to(user).filter(Q(started_at__gte=start) | Q(status=Run.Status.RUNNING))
    worst = list(window.values("task_id").annotate(worst=Max(WORST), latest=Max("started_at"))
                 .order_by("-worst", "-latest", "task_id")[:TIMELINE_TASKS + 1])
    shown = [row["task_id"] for row in worst[:TIMELINE_TASKS]]
    names = {task["pk"]: f"{task['project__name']} / {task['name']}" for task in
             Task.objects.filter(pk__in=shown).values("pk", "name", "project__name")}
    bars = window.filter(task_id__in=shown).values("id", "task_id", "status", "started_at", "finished_at")
    drawing = charts.timeline([(task_id, names.get(task_id, "")) for task_id in shown], bars, start, now)
    drawing["more"] = len(worst) > TIMELINE_TASKS
    return drawing
