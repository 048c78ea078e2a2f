from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from runs.execution import enqueue_run
from runs.orchestration import find_cycle
from runs.models import Run, RunFile
from tasks.clouds import name_cloud
from tasks.forms import TaskForm, task_formsets
from tasks.models import Task
from tasks.tables import TaskTable


def _filtered(request, tasks):
    query = request.GET.get("q", "").strip()
    if query:
        tasks = tasks.filter(Q(name__icontains=query) | Q(project__name__icontains=query)
                             | Q(project__owner__username__icontains=query))
    if request.GET.get("owner"):
        tasks = tasks.filter(project__owner__username=request.GET["owner"])
    if request.GET.get("project"):
        tasks = tasks.filter(project_id=request.GET["project"])
    return tasks


def _task_table_page(request, tasks, title, owner_cloud):
    table = TaskTable(_filtered(request, tasks).with_run_summary().select_related("project__owner"),
                      order_by=request.GET.get("sort") or ("project", "name"))
    RequestConfig(request, paginate={"per_page": min(int(request.GET.get("per_page") or 50), 500)}).configure(table)
    return render(request, "tasks/task_list.html", {
        "title": title,
        "table": table,
        "owner_cloud": name_cloud(tasks, "project__owner__username", "project__owner__username")
        if owner_cloud else None,
        "project_cloud": name_cloud(tasks, "project_id", "project__name"),
        "filters": {key: request.GET.get(key, "") for key in ("q", "owner", "project")},
    })


def task_list(request):
    return _task_table_page(request, Task.objects.visible_to(request.user), "All Tasks", owner_cloud=True)


def my_tasks(request):
    return _task_table_page(request, Task.objects.owned_by(request.user), "My Tasks", owner_cloud=False)


def _visible_task(request, pk):
    return get_object_or_404(
        Task.objects.visible_to(request.user).select_related(
            "project__owner", "project__organization", "source_connection", "text_connection",
            "processing_connection", "gpg_key"),
        pk=pk,
    )


def _editable_task(request, pk):
    return get_object_or_404(Task.objects.editable_by(request.user), pk=pk)


def task_detail(request, pk):
    task = _visible_task(request, pk)
    runs = list(task.runs.select_related("requested_by")[:20])
    live_run = next((run for run in runs if not run.is_finished), None)
    files = RunFile.objects.filter(run__task=task).select_related("run")[:50]
    return render(request, "tasks/task_detail.html", {
        "task": task,
        "destinations": task.destinations.select_related("connection"),
        "parameters": task.parameters.all(),
        "conditions": task.conditions.select_related("connection"),
        "notifications": task.notifications.select_related("smtp_connection"),
        "upstream_links": task.upstream_links.select_related("upstream"),
        "runs": runs,
        "live_run": live_run,
        "live_lines": live_run.log_lines.all() if live_run else [],
        "files": files,
        "can_edit": Task.objects.editable_by(request.user).filter(pk=pk).exists(),
        "is_running": any(run.status == Run.Status.RUNNING for run in runs),
    })


def _save_task_form(request, task=None):
    initial = {"project": request.GET.get("project")} if task is None and request.GET.get("project") else None
    form = TaskForm(request.POST or None, instance=task, user=request.user, initial=initial)
    formsets = task_formsets(request.user, request.POST or None, instance=task)
    if request.method == "POST" and form.is_valid() and all(fs.is_valid() for fs in formsets.values()):
        try:
            with transaction.atomic():
                saved = form.save()
                for formset in formsets.values():
                    formset.instance = saved
                    formset.save()
                _check_dependencies(saved)
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Task {saved.name} saved.")
            return redirect(saved)
    return render(request, "tasks/task_form.html", {"form": form, "formsets": formsets, "task": task})


def _check_dependencies(task):
    """Refuse a save that would create a dependency cycle, naming it."""
    cycle = find_cycle(task)
    if cycle:
        raise ValueError("These dependencies would make a cycle: " + " → ".join(t.name for t in cycle))


def task_new(request):
    return _save_task_form(request)


def task_edit(request, pk):
    return _save_task_form(request, _editable_task(request, pk))


def task_delete(request, pk):
    task = _editable_task(request, pk)
    if request.method == "POST":
        name = task.name
        task.delete()
        messages.success(request, f"Task {name} deleted.")
        return redirect("task-list")
    return render(request, "tasks/task_confirm_delete.html", {"task": task})


@require_POST
def task_duplicate(request, pk):
    copy = _editable_task(request, pk).duplicate()
    messages.success(request, f"Created {copy.name} (disabled). Review it, then enable it.")
    return redirect(copy)


@require_POST
def task_toggle(request, pk):
    task = _editable_task(request, pk)
    task.enabled = not task.enabled
    task.save(update_fields=["enabled", "updated_at"])
    messages.success(request, f"{task.name} is now {'enabled' if task.enabled else 'disabled'}.")
    return redirect(task)


@require_POST
def task_run(request, pk):
    task = _editable_task(request, pk)
    run = enqueue_run(task, Run.Trigger.MANUAL, request.user)
    messages.success(request, f"Run {run.pk} of {task.name} is queued.")
    return redirect(reverse("task-detail", args=[task.pk]) + "#live-run")


@require_POST
def task_bulk(request):
    action = request.POST.get("action")
    tasks = Task.objects.editable_by(request.user).filter(pk__in=request.POST.getlist("task"))
    if action not in ("enable", "disable", "run"):
        raise Http404("Unknown bulk action")
    count = len(tasks)
    if not count:
        messages.warning(request, "Select at least one task you may change.")
    elif action == "run":
        for task in tasks:
            enqueue_run(task, Run.Trigger.MANUAL, request.user)
        messages.success(request, f"Queued {count} runs.")
    else:
        Task.objects.filter(pk__in=[task.pk for task in tasks]).update(enabled=action == "enable")
        messages.success(request, f"{action.capitalize()}d {count} tasks.")
    return redirect(request.POST.get("next") or "task-list")
