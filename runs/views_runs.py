"""The runs page (/runs/): every run the user may see, filtered, searched, sorted and paged; bulk rerun of the
selected failed runs. And the dashboard (/), with its "Run all errored"."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from alerts.dashboard import late_alerts_context
from connections.expiry import expiring_for
from etl_portal.web import count_of, int_param, safe_next
from projects import access
from projects.models import Project
from runs import dashboard, queueing
from runs.filters import RunFilter
from runs.models import Run
from runs.tables import RunTable


def run_list(request):
    # Tasks, projects and owners come by prefetch (three small queries for the page), not by joins: with the
    # joins SQLite starts from the users or tasks and sorts every run before it takes a page.
    runs = (Run.objects.listed_for(request.user).select_related("requested_by")
            .prefetch_related("task__project__owner"))
    filters = RunFilter(request.GET, queryset=runs, request=request)
    # A value the user may not use (another organization's project, a bad date) shows its error, and no runs.
    table = RunTable(filters.qs if filters.is_valid() else runs.none(), order_by=request.GET.get("sort"))
    per_page = int_param(request, "per_page", default=50, minimum=1, maximum=500)
    # No COUNT over a million runs: the pager knows the next page exists, not how many there are.
    RequestConfig(request, paginate={"per_page": per_page, "paginator_class": LazyPaginator}).configure(table)
    # The table's template sees only the table: the projects whose failed runs this user may rerun go on it.
    table.editable_projects = set(Project.objects.editable_by(request.user).values_list("pk", flat=True))
    return render(request, "runs/run_list.html", {
        "table": table,
        "filters": filters,
        "filtered": any(request.GET.get(name) for name in filters.filters),
    })


def _rerun_message(request, made, not_rerun, refused=0):
    parts = [f"Queued {count_of(len(made), 'rerun')}, each for its run's date"]
    if not_rerun:
        parts.append(f"{count_of(not_rerun, 'run')} not rerun (not failed, or already rerun)")
    if refused:
        parts.append(f"{count_of(refused, 'task')} you may look at but not run")
    (messages.success if made else messages.warning)(request, "; ".join(parts) + ".")


@require_POST
def run_rerun(request):
    """Rerun the selected failed runs, each once and for its own date; an editor's right on each is checked
    (projects/access.py) before anything is queued."""
    chosen = [int_param(request, "run", minimum=1, source={"run": value}) for value in request.POST.getlist("run")]
    if not chosen:
        messages.warning(request, "Select at least one failed run.")
        return safe_next(request, "runs:list")
    runs = sorted(access.get_runs(request.user, chosen, access.EDIT), key=lambda run: run.pk)
    made, not_rerun = queueing.rerun_all(runs, request.user)
    _rerun_message(request, made, not_rerun)
    return safe_next(request, "runs:list")


def home(request):
    context = dashboard.overview(request.user, timezone.now())
    # "Run all errored" is offered, after a failure in the last 24 h, to whoever may run some project's tasks; the
    # action works out which tasks are still failing (not counted here: it reads every task's latest run) and
    # checks each.
    context["can_rerun"] = bool(context["failed_count"]) and Project.objects.editable_by(request.user).exists()
    context.update(late_alerts_context(request.user))  # alerts/dashboard.py: open late and missed alerts
    context["expiring"] = expiring_for(request.user)  # connections/expiry.py: credentials expiring within 30 days
    return render(request, "runs/dashboard.html", context)


@require_POST
def run_errored(request):
    """Rerun the latest failed run of every task still failing that the user may run (each for its date)."""
    runs = list(dashboard.errored_runs(request.user).select_related("task__project__organization").order_by("id"))
    allowed, refused = access.sort_runs(request.user, runs, access.EDIT)
    if refused and not allowed:
        raise PermissionDenied(access.refusal(access.EDIT))
    made, not_rerun = queueing.rerun_all(allowed, request.user)
    if not runs:
        messages.info(request, "No task is failing: nothing to rerun.")
    else:
        _rerun_message(request, made, not_rerun, len(refused))
    return redirect("dashboard:home")
