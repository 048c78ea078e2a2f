"""Connection pools: a connection with run slots (`Connection.max_runs`) is used by at most that many running runs
at once; the other runs that need it wait queued ("waiting for <connection>") and start, best priority first, as
slots free up.

A run uses a connection when its task names it as source, as the connection holding its query, script or
command, as its processing script's connection, in a destination (its own, or the default destination its
levels set when it has none) or in a condition: every server the run talks
to while it holds its worker. Not the GPG key (a key, read locally) nor the SMTP connection of its emails (sent
after the run has ended, outside its slot).

The cap is held where runs are claimed (runs/orchestration.py `_claim_best`): the claiming transaction locks the
run's capped connections (SELECT ... FOR UPDATE on PostgreSQL, in id order; SQLite's transactions take the
write lock at BEGIN), counts the running runs that use each, and claims only below the cap, so several workers
on several hosts never exceed it. Nothing else queues: a run waits in the one run queue, as a run held back by
its project's or task's limits does.
"""
from django.db import connection as db_connection
from django.db.models import Q

from connections.models import Connection
from runs.models import Run
from tasks.models import Condition, Destination, Task

# The Task columns naming a connection a run uses (see the module's docstring).
TASK_COLUMNS = ("source_connection", "text_connection", "processing_connection")


def tasks_using(connection_ids):
    """Tasks that use any of these connections (a queryset of ids, usable as a subquery)."""
    ids = list(connection_ids)  # compared with JSON values below: a plain list on every database
    uses = Q()
    for column in TASK_COLUMNS:
        uses |= Q(**{f"{column}__in": ids})
    uses |= Q(pk__in=Destination.objects.filter(connection__in=ids).values("task_id"))
    uses |= Q(pk__in=Condition.objects.filter(connection__in=ids).values("task_id"))
    uses |= _inherited_destination_in(ids)
    return Task.objects.filter(uses).values("pk")


def _inherited_destination_in(ids):
    """A task without destinations of its own delivers to the default destination its levels set (task, then
    project, then organization: tasks/inheritance.py), so it uses that connection."""
    if not ids:
        return Q(pk__in=[])
    own = Q(destination_connection__in=ids)
    project = Q(destination_connection__isnull=True, project__settings__destination_connection__in=ids)
    organization = Q(destination_connection__isnull=True, project__settings__destination_connection__isnull=True,
                     project__organization__settings__destination_connection__in=ids)
    return Q(destinations__isnull=True) & (own | project | organization)


def inherited_destination(task):
    """The connection id of the default destination `task` delivers to, or None (see `_inherited_destination_in`)."""
    return (task.destination_connection_id or (task.project.settings or {}).get("destination_connection")
            or (task.project.organization.settings or {}).get("destination_connection"))


def connections_of(task_ids, connection_ids):
    """{task id: set of the given connections it uses}, for these tasks."""
    found = {}

    def add(task_id, connection_id):
        if connection_id in connection_ids:
            found.setdefault(task_id, set()).add(connection_id)

    columns = [f"{column}_id" for column in TASK_COLUMNS]
    for task_id, *ids in Task.objects.filter(pk__in=task_ids).values_list("pk", *columns):
        for connection_id in ids:
            add(task_id, connection_id)
    for model in (Destination, Condition):
        for task_id, connection_id in model.objects.filter(task__in=task_ids, connection__in=connection_ids) \
                .values_list("task_id", "connection_id"):
            add(task_id, connection_id)
    for task in Task.objects.filter(pk__in=task_ids, destinations__isnull=True).select_related(
            "project__organization").only("pk", "destination_connection", "project__settings",
                                          "project__organization__settings"):
        add(task.pk, inherited_destination(task))
    return found


def running_using(connection_id, exclude=None):
    runs = Run.objects.filter(status=Run.Status.RUNNING, task__in=tasks_using([connection_id]))
    if exclude is not None:
        runs = runs.exclude(pk=exclude)
    return runs.count()


class Pools:
    """The capped connections as one claim sees them: their caps, which tasks use them, how many runs hold a slot."""

    def __init__(self, running_by_task):
        self.caps = dict(Connection.objects.filter(max_runs__isnull=False).values_list("pk", "max_runs"))
        self.by_task, self.running = {}, {}
        if not self.caps:
            return
        users = tasks_using(list(self.caps))
        self.by_task = connections_of(users, set(self.caps))
        for task_id, count in running_by_task.items():
            for connection_id in self.by_task.get(task_id, ()):
                self.running[connection_id] = self.running.get(connection_id, 0) + count

    @property
    def full(self):
        return {pk for pk, cap in self.caps.items() if self.running.get(pk, 0) >= cap}

    def blocked_tasks(self):
        """Tasks that need a connection with no free slot now (read without a lock: a hint, checked again)."""
        full = self.full
        return [task_id for task_id, used in self.by_task.items() if used & full] if full else []

    def capped_of(self, task_id):
        return sorted(self.by_task.get(task_id, ()))

    def slot_free(self, task_id, run_id):
        """Inside the claiming transaction: lock the task's capped connections and count again; True when every
        one of them has a free slot for `run_id`."""
        capped = self.capped_of(task_id)
        if not capped:
            return True
        if db_connection.features.has_select_for_update:
            list(Connection.objects.select_for_update().filter(pk__in=capped).order_by("pk").values_list("pk"))
        return all(running_using(pk, exclude=run_id) < self.caps[pk] for pk in capped)


def waiting_for(run):
    """The capped connections a queued run waits for (no free slot now), for the pages; [] otherwise."""
    if run.status != Run.Status.QUEUED:
        return []
    capped = Connection.objects.filter(max_runs__isnull=False)
    capped_ids = set(capped.values_list("pk", flat=True))
    if not capped_ids:
        return []
    used = connections_of([run.task_id], capped_ids)
    full = [connection for connection in capped.filter(pk__in=used.get(run.task_id, ())).order_by("name")
            if running_using(connection.pk) >= connection.max_runs]
    return full


def queued_behind(task_id):
    """How many queued runs wait for a capped connection this task uses (woken when one of its runs ends)."""
    capped = set(Connection.objects.filter(max_runs__isnull=False).values_list("pk", flat=True))
    if not capped:
        return 0
    used = connections_of([task_id], capped).get(task_id)
    if not used:
        return 0
    return Run.objects.filter(status=Run.Status.QUEUED, task__in=tasks_using(list(used))).count()
