"""POST endpoints for the schedule controls: reschedule a task or project, cancel a run, cancel retries."""
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from projects import scheduling
from projects.models import Project
from runs import orchestration
from runs.models import Run
from tasks.models import Task


def _back(request, fallback, *args):
    target = request.POST.get("next") or request.META.get("HTTP_REFERER")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)


@require_POST
def task_reschedule(request, pk):
    task = get_object_or_404(Task.objects.editable_by(request.user).select_related("project"), pk=pk)
    made = scheduling.reschedule(task=task)
    messages.success(request, f"Schedules of {task.project.name} and {task.name} recreated ({made}).")
    return _back(request, "task-detail", task.pk)


@require_POST
def project_reschedule(request, pk):
    project = get_object_or_404(Project.objects.editable_by(request.user), pk=pk)
    made = scheduling.reschedule(project=project)
    messages.success(request, f"Schedules of {project.name} recreated ({made}).")
    return _back(request, "project-detail", project.pk)


@require_POST
def run_cancel(request, pk):
    run = get_object_or_404(Run.objects.filter(task__in=Task.objects.editable_by(request.user)), pk=pk)
    try:
        messages.success(request, orchestration.cancel_run(run, request.user))
    except orchestration.Refused as exc:
        messages.error(request, str(exc))
    return _back(request, "run-detail", run.pk)


@require_POST
def task_cancel_retry(request, pk):
    task = get_object_or_404(Task.objects.editable_by(request.user), pk=pk)
    try:
        messages.success(request, orchestration.cancel_retries(task, request.user))
    except orchestration.Refused as exc:
        messages.error(request, str(exc))
    return _back(request, "task-detail", task.pk)
