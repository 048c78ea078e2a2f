"""Task page actions on output files: resend a file from history, preview a task's parameters, dry-run it."""
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.middleware import activate_zone
from connections.protocols import ConnectorError
from etl_portal.web import safe_next
from projects import access
from runs import delivery, dry_run, preview
from runs.models import DryRun, RunFile
from tasks.models import Task


def _wants_json(request):
    return request.GET.get("format") == "json" or "application/json" in request.headers.get("Accept", "")


def _back(request, task):
    return safe_next(request, "tasks:detail", task.pk)


@require_POST
def file_resend(request, pk):
    """Deliver a stored file again to the task's current destinations; logged on the file's run."""
    try:
        run_file = RunFile.objects.select_related("run").get(
            pk=pk, run__task__in=Task.objects.visible_to(request.user))
    except RunFile.DoesNotExist:
        raise Http404("No such file, or you may not see it.") from None
    task = access.get_task(request.user, run_file.run.task_id, access.EDIT)
    try:
        results = delivery.resend(run_file, request.user)
    except ConnectorError as exc:
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": exc.message}, status=400)
        messages.error(request, exc.message)
        return _back(request, task)
    if _wants_json(request):
        return JsonResponse({"ok": all(result["ok"] for result in results), "results": results})
    name = run_file.display_name  # secrets masked (runs/masking.py)
    for result in results:
        if result["ok"]:
            messages.success(request, f"{name} resent to {result['destination']} ({result['message']}).")
        else:
            messages.error(request, f"{name} was not resent to {result['destination']}: {result['message']}")
    return _back(request, task)


@require_http_methods(["GET", "POST"])
def task_preview(request, pk):
    """Every parameter resolved, the file name and the query as they would be for now or `?date=`."""
    task = access.get_task(request.user, pk)
    chosen = (request.POST.get("date") or request.GET.get("date") or "").strip()
    status = 200
    try:
        result = preview.preview(task, chosen or None)
    except ConnectorError as exc:
        result, status = {"errors": [exc.message], "parameters": []}, 400
    result["chosen_date"] = chosen
    if _wants_json(request):
        return JsonResponse(result, status=status)
    return render(request, "tasks/_preview.html", {"task": task, "preview_result": result}, status=status)


@require_POST
def task_dry_run(request, pk):
    """Ask for a dry run of the task for the posted date (runs/dry_run.py); its page shows the report."""
    task = access.get_task(request.user, pk, access.EDIT)
    chosen = (request.POST.get("date") or "").strip()
    try:
        made = dry_run.request(task, request.user, chosen or None)
    except ConnectorError as exc:
        messages.error(request, exc.message)
        return redirect("tasks:detail", task.pk)
    return redirect("runs:dry-run", made.pk)


def dry_run_detail(request, pk):
    """The dry run's report; while the worker is at it, the page polls its own body (htmx)."""
    made = get_object_or_404(DryRun.objects.select_related("requested_by"), pk=pk)
    task = access.get_task(request.user, made.task_id)
    activate_zone(request, task.project.time_zone)
    template = "runs/_dry_run_body.html" if request.headers.get("HX-Request") else "runs/dry_run.html"
    return render(request, template, {"dry_run": made, "task": task, "report": made.report})
