"""Drift: an output that changed shape since the task's last good run is caught before it reaches a vendor.

Each query run records its columns (name and the source's type name) and its row count. Before delivery the run
is compared with the task's *baseline*, its latest run that delivered (succeeded or warning) or whose drift an
editor accepted:

- **columns**: added, removed, retyped (same name, another source type), renamed (a column gone and one new
  at the same place, of the same type), or the same columns in another order;
- **row count**: outside the band the task learned from its history. The rule, robust to the odd day: the
  median M and the median absolute deviation D of the row counts of the last 20 good runs (at least 5 of them,
  else nothing is judged); the band is M ± 4 x max(1.4826 x D, 2.5 % of M, 1) rows. 1.4826 x D estimates the
  standard deviation of normal data without letting one outlier widen it; the floor keeps a task whose count
  never varied from alarming at its first extra row (it tolerates ±10 %).

Found drift is recorded on the run (`Run.drift`) and, as the task's `drift_check` says, logged as a warning
(the files are delivered) or stops the run before delivery (it fails). Accepting a run's drift makes it the
new baseline. Sources that declare no columns (files, scripts, SSH) are judged by their row count only when
they have one.
"""
import statistics

from django.db.models import Q
from django.utils import timezone

from runs.errors import PipelineError
from runs.models import Run
from tasks.models import Task

HISTORY = 20
MIN_HISTORY = 5
BAND_WIDTH = 4
NORMAL_MAD = 1.4826
FLOOR_SHARE = 0.025


def good_runs(task, before=None):
    """The task's runs that count as history (before run `before`; all for a dry run, which has no id):
    delivered, or drift accepted; newest first."""
    runs = Run.objects.filter(task=task, pk__lt=before) if before is not None else Run.objects.filter(task=task)
    return (runs
            .filter(Q(status__in=(Run.Status.SUCCEEDED, Run.Status.WARNING)) | Q(drift__has_key="accepted_by"))
            .order_by("-id"))


def column_changes(before, after):
    """What changed from `before` to `after`, each a list of [name, type or None]; a list of sentences."""
    old = {name: kind for name, kind in before}
    new = {name: kind for name, kind in after}
    removed = [(index, name) for index, (name, _) in enumerate(before) if name not in new]
    added = [(index, name) for index, (name, _) in enumerate(after) if name not in old]
    changes = []
    for (old_index, old_name), (new_index, new_name) in zip(list(removed), list(added)):
        if old_index == new_index and old[old_name] == new[new_name]:
            changes.append(f"column {old_name} renamed to {new_name}")
            removed.remove((old_index, old_name))
            added.remove((new_index, new_name))
    changes += [f"column {name} removed" for _, name in removed]
    changes += [f"column {name} added" for _, name in added]
    for name, kind in after:
        if name in old and old[name] and kind and old[name] != kind:
            changes.append(f"column {name} changed type from {old[name]} to {kind}")
    kept_before = [name for name, _ in before if name in new]
    kept_after = [name for name, _ in after if name in old]
    if kept_before != kept_after:
        changes.append("the columns' order changed")
    return changes


def row_band(counts):
    """(median, low, high) of the usual row count, or None with too little history (see the module docstring)."""
    if len(counts) < MIN_HISTORY:
        return None
    median = statistics.median(counts)
    mad = statistics.median(abs(count - median) for count in counts)
    scale = max(NORMAL_MAD * mad, FLOOR_SHARE * median, 1)
    return median, max(0, median - BAND_WIDTH * scale), median + BAND_WIDTH * scale


def find(run):
    """The run's drift against its baseline as a dict (empty when nothing drifted)."""
    drift = {}
    baseline = good_runs(run.task, run.pk).exclude(columns=[]).only("pk", "columns").first()
    if run.columns and baseline is not None:
        changes = column_changes(baseline.columns, run.columns)
        if changes:
            drift.update(columns=changes, baseline_run=baseline.pk)
    if run.rows is not None:
        counts = list(good_runs(run.task, run.pk).filter(rows__isnull=False)
                      .values_list("rows", flat=True)[:HISTORY])
        band = row_band(counts)
        if band and not band[1] <= run.rows <= band[2]:
            median, low, high = band
            drift["rows"] = {"count": run.rows, "median": median, "low": int(low), "high": int(high),
                             "history": len(counts)}
    return drift


def describe(drift):
    parts = list(drift.get("columns", []))
    if "rows" in drift:
        rows = drift["rows"]
        parts.append(f"{rows['count']:,} rows, outside the usual {rows['low']:,}–{rows['high']:,} (median "
                     f"{rows['median']:,.0f} of the last {rows['history']} good runs)")
    where = f" since run #{drift['baseline_run']}" if drift.get("baseline_run") else ""
    return f"Output drift{where}: " + "; ".join(parts)


def check(ctx):
    """Before delivery: record the run's drift and warn or stop as the task says."""
    if ctx.task.drift_check == Task.DriftCheck.OFF:
        return
    drift = find(ctx.run)
    if not drift:
        return
    ctx.run.record(drift=drift)
    message = describe(drift)
    if ctx.task.drift_check == Task.DriftCheck.STOP:
        raise PipelineError(f"Not delivered: {message}. Accept the change on the run's page if it is right.",
                            step="drift")
    ctx.warn(message)


def accept(run, user):
    """An editor says the run's new shape is right: it becomes the baseline of the next runs."""
    drift = dict(run.drift or {})
    drift.update(accepted_by=user.username, accepted_at=timezone.now().isoformat(timespec="seconds"))
    Run.objects.filter(pk=run.pk).update(drift=drift)
    run.drift = drift
    run.log(f"Drift accepted by {user.username}: the next runs compare with this one")
