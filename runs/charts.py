"""Charts drawn on the server as SVG geometry (the templates only place it: no script, no CDN, CSP-safe).

`timeline`: a day's runs, one row per task, one bar per run from its start to its end (or now), coloured by
status. `run_history`: a task's last runs as two small bar charts, duration and rows.
"""
import datetime
from dataclasses import dataclass, field

from django.utils import timezone

LABEL_WIDTH, PLOT_WIDTH, ROW_HEIGHT, AXIS_HEIGHT = 200, 800, 18, 20
MIN_BAR = 2  # a run of a few seconds is still a visible mark


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    run_id: int
    title: str


@dataclass
class Row:
    label: str
    task_id: int
    y: float
    bars: list = field(default_factory=list)


def _clock(moment):
    return timezone.localtime(moment).strftime("%H:%M")


def timeline(tasks, runs, start, end):
    """SVG geometry of the runs between `start` and `end`: `tasks` is [(task id, label)] in row order, `runs` the
    dicts (id, task_id, status, started_at, finished_at) to draw. A run still going ends at `end`."""
    span = (end - start).total_seconds()

    def x_of(moment):
        seconds = min(max((moment - start).total_seconds(), 0), span)
        return LABEL_WIDTH + seconds / span * PLOT_WIDTH

    rows = {task_id: Row(label, task_id, AXIS_HEIGHT + index * ROW_HEIGHT) for index, (task_id, label) in
            enumerate(tasks)}
    for run in runs:
        row = rows.get(run["task_id"])
        if row is None or run["started_at"] is None:
            continue
        finish = run["finished_at"] or end
        x = x_of(run["started_at"])
        width = max(x_of(finish) - x, MIN_BAR)
        took = finish - run["started_at"]
        title = (f"Run {run['id']} of {row.label}: {run['status']}, {_clock(run['started_at'])}"
                 f"{'–' + _clock(run['finished_at']) if run['finished_at'] else ', still running'}"
                 f" ({int(took.total_seconds())} s)")
        row.bars.append(Bar(round(x, 1), row.y + 3, round(width, 1), ROW_HEIGHT - 6, run["status"], run["id"], title))
    ticks, hour = [], timezone.localtime(start).replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        if hour >= start:
            ticks.append({"x": round(x_of(hour), 1), "label": hour.strftime("%H:%M")})
        hour = timezone.localtime(hour + datetime.timedelta(hours=3))
    return {"rows": list(rows.values()), "ticks": ticks, "width": LABEL_WIDTH + PLOT_WIDTH,
            "height": AXIS_HEIGHT + max(len(rows), 1) * ROW_HEIGHT, "label_width": LABEL_WIDTH,
            "plot_end": LABEL_WIDTH + PLOT_WIDTH, "now_x": round(x_of(timezone.now()), 1)}


CHART_WIDTH, CHART_HEIGHT = 300, 60


def run_history(runs):
    """Two bar charts (duration in seconds, rows) of `runs`, oldest first; None when no run has finished."""
    runs = [run for run in runs if run.started_at and run.finished_at]
    if not runs:
        return None
    step = CHART_WIDTH / len(runs)
    charts = []
    for name, unit, value_of in (("Duration", "s", lambda run: (run.finished_at - run.started_at).total_seconds()),
                                 ("Rows", "", lambda run: run.rows or 0)):
        values = [value_of(run) for run in runs]
        top = max(values) or 1
        bars = []
        for index, (run, value) in enumerate(zip(runs, values)):
            height = max(value / top * CHART_HEIGHT, 1)
            bars.append(Bar(round(index * step + 1, 1), round(CHART_HEIGHT - height, 1), round(max(step - 2, 1), 1),
                            round(height, 1), run.status, run.pk,
                            f"Run {run.pk} ({run.status}): {round(value) if unit else int(value)}{' ' + unit if unit else ' rows'}"))
        charts.append({"name": name, "bars": bars, "top": round(top) if unit else int(top), "unit": unit})
    return {"charts": charts, "width": CHART_WIDTH, "height": CHART_HEIGHT, "count": len(runs)}
