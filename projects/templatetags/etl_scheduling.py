"""Template tags behind the scheduling includes: task controls, next run times, the dependency graph."""
from django import template
from django.db.models import Q

from projects import graph, scheduling, triggers

register = template.Library()


@register.simple_tag(takes_context=True)
def task_controls(context, task):
    """What the schedule controls of a task page need: its running runs, pending retries, edit right."""
    from runs.orchestration import pending_retries
    from runs.models import Backfill, Run
    from tasks.models import Task

    user = context.get("user") or getattr(context.get("request"), "user", None)
    rights = getattr(task, "rights", None)  # set by projects.access when the page fetched the task: no query
    can_edit = rights.can_edit if rights is not None else bool(
        user and user.is_authenticated and Task.objects.editable_by(user).filter(pk=task.pk).exists())
    # Running and queued runs in one read. A backfill's queued runs are cancelled as one batch (its button), not one
    # button per date; a queued retry has its own button.
    live = list(task.runs.filter(Q(status=Run.Status.RUNNING) | Q(
        status=Run.Status.QUEUED, backfill__isnull=True) & ~Q(trigger=Run.Trigger.RETRY)).order_by("id"))
    running = [run for run in live if run.status == Run.Status.RUNNING]
    queued = [run for run in live if run.status == Run.Status.QUEUED]
    backfills = Backfill.objects.filter(runs__task=task, runs__status__in=(Run.Status.QUEUED, Run.Status.RUNNING),
                                        cancelled_at__isnull=True).distinct().order_by("id")
    return {"can_edit": can_edit, "running": running, "pending_retries": list(pending_retries(task)),
            "queued": queued, "backfills": list(backfills)}


@register.simple_tag
def waiting_for(run):
    """The connections with no free run slot a queued run waits for (runs/pools.py)."""
    from runs.pools import waiting_for as full_connections

    return full_connections(run)


@register.simple_tag
def waiting_for_window(run):
    """[(connection, end)] of the maintenance windows a queued run waits for (runs/windows.py)."""
    from runs.windows import waiting_for_window as in_maintenance

    return in_maintenance(run)


@register.simple_tag
def trigger_rows(project, count=10):
    """Each trigger of the project with its next `count` times in the project's time zone."""
    zone = triggers.time_zone(project.time_zone)
    rows = []
    for trigger in project.triggers.all():
        rows.append({"trigger": trigger, "description": triggers.describe(trigger),
                     "zone": triggers.zone_of(trigger).key,
                     "times": scheduling.upcoming(trigger, count, zone=zone) if trigger.enabled else []})
    return {"zone": zone.key, "triggers": rows}


@register.simple_tag
def dependency_graph(project):
    return graph.dependency_graph(project)
