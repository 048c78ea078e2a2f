from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from runs.execution import enqueue_run
from runs.models import Run
from tasks.models import Task
from tasks.tables import TaskTable


def task_list(request):
    tasks = Task.objects.visible_to(request.user).select_related("project__owner")
    table = TaskTable(tasks)
    RequestConfig(request, paginate={"per_page": 50}).configure(table)
    return render(request, "tasks/task_list.html", {"table": table})


def task_detail(request, pk):
    task = get_object_or_404(
        Task.objects.visible_to(request.user).select_related("project__owner", "source_connection"), pk=pk
    )
    runs = task.runs.select_related("requested_by").prefetch_related("files")[:20]
    return render(request, "tasks/task_detail.html", {
        "task": task,
        "destinations": task.destinations.select_related("connection"),
        "runs": runs,
        "can_edit": Task.objects.editable_by(request.user).filter(pk=pk).exists(),
    })


@require_POST
def task_run(request, pk):
    task = get_object_or_404(Task.objects.editable_by(request.user), pk=pk)
    run = enqueue_run(task, Run.Trigger.MANUAL, request.user)
    messages.success(request, f"Run {run.pk} of {task.name} is queued.")
    return redirect("run-detail", pk=run.pk)
