"""Task page actions on output files: resend a file from history, and preview a task's parameters."""
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from connections.protocols import ConnectorError
from runs import delivery, parameters
from runs.models import RunFile
from tasks.models import Task


def _wants_json(request):
    return request.GET.get("format") == "json" or "application/json" in request.headers.get("Accept", "")


def _back(request, task):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect("task-detail", pk=task.pk)


@require_POST
def file_resend(request, pk):
    """Deliver a stored file again to the task's current destinations; logged on the file's run."""
    run_file = get_object_or_404(
        RunFile.objects.select_related("run__task").filter(run__task__in=Task.objects.editable_by(request.user)),
        pk=pk)
    task = run_file.run.task
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
    task = get_object_or_404(Task.objects.visible_to(request.user).select_related("project"), pk=pk)
    chosen = (request.POST.get("date") or request.GET.get("date") or "").strip()
    status = 200
    try:
        result = parameters.preview(task, chosen or None)
    except ConnectorError as exc:
        result, status = {"errors": [exc.message], "parameters": []}, 400
    result["chosen_date"] = chosen
    if _wants_json(request):
        return JsonResponse(result, status=status)
    return render(request, "tasks/_preview.html", {"task": task, "preview_result": result}, status=status)
