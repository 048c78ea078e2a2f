"""Maintenance windows at the claim: a run that would use a connection (runs/pools.py says which: source, text,
processing, destinations, conditions) while one of the connection's maintenance windows holds waits queued and
is claimed once the window has ended ("waiting for the maintenance window of <connection> until 02:00").

The claim (runs/orchestration.py `_claim_best`) leaves the held tasks out of its candidates and, inside the
claiming transaction just before the conditional update, reads the candidate's windows again at the claim's
moment, so a window is held by every worker on every host (windows are data; each claim decides from the rows
and its own clock). At a window's end, `kick_stalled_runs` (called every second by the housekeeping leader) finds
the run claimable again and wakes a worker. Whether a moment lies in a window: connections/maintenance.py.

The dry run (runs/dry_run.py) asks the same question of a run claimed at its own moment (`in_maintenance`) and
lists the windows beginning within the next day on the connections the task uses (`coming`).
"""
import datetime

from django.utils import timezone

from connections import maintenance
from connections.models import Connection, MaintenanceWindow
from runs import pools
from runs.models import Run

COMING_HOURS = 24  # the dry run lists the windows that begin within this many hours


def _by_connection(at):
    found = {}
    for window in MaintenanceWindow.objects.current_or_coming(at):
        found.setdefault(window.connection_id, []).append(window)
    return found


def closed_connections(at=None):
    """{connection id: end of its maintenance} for the connections in a window at `at` (default: now)."""
    at = at or timezone.now()
    closed = {}
    for connection_id, windows in _by_connection(at).items():
        end = maintenance.closed_until(windows, at)
        if end:
            closed[connection_id] = end
    return closed


class Windows:
    """The maintenance in force as one claim sees it at `at`."""

    def __init__(self, at=None):
        self.at = at or timezone.now()
        self.closed = closed_connections(self.at)
        self.by_task = {}
        if self.closed:
            self.by_task = pools.connections_of(pools.tasks_using(list(self.closed)), set(self.closed))

    def held_tasks(self):
        """Tasks using a connection in maintenance now (read before the claim; checked again inside it)."""
        return list(self.by_task)

    def open_for(self, task_id):
        """Inside the claiming transaction: read the task's windows again; True when none holds at `at`."""
        if not MaintenanceWindow.objects.exists():
            return True
        closed = closed_connections(self.at)
        return not (closed and pools.connections_of([task_id], set(closed)).get(task_id))


def tasks_reopened(now, seconds):
    """Tasks using a connection whose maintenance ended within the last `seconds` (so their runs may start)."""
    if not MaintenanceWindow.objects.exists():
        return []
    before = closed_connections(now - datetime.timedelta(seconds=seconds))
    ended = set(before) - set(closed_connections(now))
    return list(pools.connections_of(pools.tasks_using(list(ended)), ended)) if ended else []


def waiting_for_window(run, at=None):
    """[(connection, end)] of the windows a queued run waits for, by name, for the pages; [] otherwise."""
    if run.status != Run.Status.QUEUED:
        return []
    return in_maintenance(run.task_id, at)


def in_maintenance(task_id, at=None):
    """[(connection, end)] of the connections the task's runs use that are in a maintenance window at `at`
    (default: now), by name: what a run claimed at `at` would wait for (the queued run's wait, the dry run's)."""
    if not MaintenanceWindow.objects.exists():
        return []
    closed = closed_connections(at)
    used = pools.connections_of([task_id], set(closed)).get(task_id) if closed else None
    if not used:
        return []
    return [(connection, closed[connection.pk]) for connection in Connection.objects.filter(pk__in=used)
            .order_by("name")]


def coming(task_id, at=None, hours=COMING_HOURS):
    """[(connection, start, end)] of the maintenance that begins within `hours` after `at` (default: now) on the
    connections the task's runs use, earliest first. Windows that overlap or follow one another are one (its end
    is the last one's, as for the wait); one already holding at `at` is `in_maintenance`'s, not listed here."""
    at = at or timezone.now()
    by_connection = _by_connection(at)
    used = pools.connections_of([task_id], set(by_connection)).get(task_id) if by_connection else None
    if not used:
        return []
    horizon = at + datetime.timedelta(hours=hours)
    found = []
    for connection in Connection.objects.filter(pk__in=used).order_by("name"):
        windows = by_connection[connection.pk]
        covered = maintenance.closed_until(windows, at) or at
        for start in sorted(start for window in windows for start in maintenance.window_starts(window, at, horizon)):
            if start <= covered:  # inside (or joined to) maintenance already listed
                continue
            covered = maintenance.closed_until(windows, start)
            found.append((connection, start, covered))
    return sorted(found, key=lambda item: item[1])

