"""POST endpoints for the schedule controls: reschedule a task or project, cancel a run, cancel retries, accept a
run's drift."""
from django.contrib import messages
from django.views.decorators.http import require_POST

from etl_portal.web import safe_next as _back
from projects import access, scheduling
from runs import drift, orchestration


@require_POST
def task_reschedule(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    made = scheduling.reschedule(task=task)
    messages.success(request, f"Schedules of {task.project.name} and {task.name} recreated ({made}).")
    return _back(request, "tasks:detail", task.pk)


@require_POST
def project_reschedule(request, pk):
    project = access.get_project(request.user, pk, access.EDIT)
    made = scheduling.reschedule(project=project)
    messages.success(request, f"Schedules of {project.name} recreated ({made}).")
    return _back(request, "projects:detail", project.pk)


@require_POST
def run_cancel(request, pk):
    run = access.get_run(request.user, pk, access.EDIT)
    try:
        messages.success(request, orchestration.cancel_run(run, request.user))
    except orchestration.Refused as exc:
        messages.error(request, str(exc))
    return _back(request, "runs:detail", run.pk)


@require_POST
def task_cancel_retry(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    try:
        messages.success(request, orchestration.cancel_retries(task, request.user))
    except orchestration.Refused as exc:
        messages.error(request, str(exc))
    return _back(request, "tasks:detail", task.pk)


@require_POST
def run_accept_drift(request, pk):
    run = access.get_run(request.user, pk, access.EDIT)
    if not run.drift or run.drift.get("accepted_by"):
        messages.error(request, f"Run #{run.pk} has no drift waiting to be accepted.")
    else:
        drift.accept(run, request.user)
        messages.success(request, f"Accepted: the next runs of {run.task.name} compare with run #{run.pk}.")
    return _back(request, "runs:detail", run.pk)
