from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_tables2 import RequestConfig

from accounts.middleware import activate_zone
from alerts.models import Webhook
from etl_portal.web import Page, count_of, int_param, safe_next
from projects import access
from projects.models import Project
from runs import queueing
from runs.queueing import enqueue_run
from runs.orchestration import find_cycle
from runs import charts
from runs.models import Run, RunFile
from tasks import inheritance, try_out
from runs.views import FILES_PER_PAGE
from tasks.clouds import name_cloud
from tasks.forms import FORMSET_TABS, TaskForm, task_formsets
from tasks.models import Task
from tasks.tables import TaskTable


def _filtered(request, tasks):
    query = request.GET.get("q", "").strip()
    if query:
        tasks = tasks.filter(Q(name__icontains=query) | Q(project__name__icontains=query)
                             | Q(project__owner__username__icontains=query))
    if request.GET.get("owner"):
        tasks = tasks.filter(project__owner__username=request.GET["owner"])
    project = int_param(request, "project", minimum=1)
    if project:
        tasks = tasks.filter(project_id=project)
    return tasks


NEVER_RUN = "never"


def _by_last_run(request, tasks):
    """The status filter: tasks whose last run has this status, or (`never`) that never ran."""
    status = request.GET.get("status", "")
    if status == NEVER_RUN:
        return tasks.filter(last_run_status__isnull=True)
    if status and status not in Run.Status.values:
        raise BadRequest(f"status must be one of {', '.join(Run.Status.values)} or {NEVER_RUN}.")
    return tasks.filter(last_run_status=status) if status else tasks


def _task_table_page(request, tasks, title, owner_cloud):
    table = TaskTable(_by_last_run(request, _filtered(request, tasks).with_run_summary()).select_related("project__owner"),
                      order_by=request.GET.get("sort") or ("project", "name"))
    per_page = int_param(request, "per_page", default=50, minimum=1, maximum=500)
    RequestConfig(request, paginate={"per_page": per_page}).configure(table)
    return render(request, "tasks/task_list.html", {
        "title": title,
        "table": table,
        "owner_cloud": name_cloud(tasks, "project__owner__username", "project__owner__username")
        if owner_cloud else None,
        "project_cloud": name_cloud(tasks, "project_id", "project__name"),
        "filters": {key: request.GET.get(key, "") for key in ("q", "owner", "project", "status")},
        "statuses": [*Run.Status.choices, (NEVER_RUN, "Never run")],
        "can_create": Project.objects.editable_by(request.user).exists(),
    })


def task_list(request):
    return _task_table_page(request, Task.objects.visible_to(request.user), "All Tasks", owner_cloud=True)


def my_tasks(request):
    return _task_table_page(request, Task.objects.owned_by(request.user), "My Tasks", owner_cloud=False)


RUNS_PER_PAGE = 20
CHART_RUNS = 30


def task_detail(request, pk):
    task = access.get_task(request.user, pk, queryset=Task.objects.select_related(
        "source_connection", "text_connection", "processing_connection", "gpg_key"))
    task.with_effective_settings()  # the page shows what a run would use; the panel says where each comes from
    activate_zone(request, task.project.time_zone)
    status = request.GET.get("status", "")
    if status and status not in Run.Status.values:
        raise BadRequest(f"status must be one of {', '.join(Run.Status.values)}.")
    runs = task.runs.select_related("requested_by")
    if status:
        runs = runs.filter(status=status)
    run_page = Page(runs, int_param(request, "run_page", default=1, minimum=1, maximum=100000), RUNS_PER_PAGE)
    for run in run_page:
        run.task = task  # the row names the task's retries: no query per row
    live_run = (task.runs.filter(status__in=(Run.Status.RUNNING, Run.Status.QUEUED))
                .order_by("-status", "-id").first())  # "running" sorts after "queued": a running run first
    # The last finished runs, newest first, in one query: the chart of their duration and rows (drawn on the server,
    # runs/charts.py, oldest first) and the latest one's drift.
    finished = list(task.runs.filter(status__in=Run.FINISHED).only(
        "pk", "task_id", "status", "started_at", "finished_at", "rows", "drift").order_by("-id")[:CHART_RUNS])
    # The latest finished run, when its output drifted and nobody accepted it yet (runs/drift.py).
    last_finished = finished[0] if finished else None
    drifted_run = (last_finished if last_finished and last_finished.drift
                   and not last_finished.drift.get("accepted_by") else None)
    files = Page(RunFile.objects.filter(run__task=task).select_related("run"),
                 int_param(request, "file_page", default=1, minimum=1, maximum=100000), FILES_PER_PAGE)
    return render(request, "tasks/task_detail.html", {
        "task": task,
        # What the source kind (tasks/source_kinds/) shows of itself.
        "source_summary": task.source.summary(task),
        "source_text": task.source.detail_text(task),
        "destinations": task.destinations_in_effect(),
        "shared_settings": inheritance.grouped(task.effective_settings()),
        "parameters": task.parameters.all(),
        "conditions": task.conditions.select_related("connection"),
        "notifications": task.notifications.select_related("smtp_connection"),
        "upstream_links": task.upstream_links.select_related("upstream"),
        "runs": run_page,
        "status": status,
        "statuses": Run.Status.choices,
        "live_run": live_run,
        "run_chart": charts.run_history(finished[::-1]),
        "drifted_run": drifted_run,
        "live_lines": live_run.log_lines.all() if live_run else [],
        "files": files,
        "can_edit": task.rights.can_edit,
        "rights": task.rights,
        "template_projects": Project.objects.editable_by(request.user).filter(
            organization=task.project.organization_id).exclude(pk=task.project_id).order_by("name"),
        "is_running": bool(live_run and live_run.status == Run.Status.RUNNING),
        "open_alerts": task.alerts.open().select_related("run"),
        # The task's, its project's and its organization's, each with the rights of its level.
        "webhooks": access.with_webhook_rights(request.user, Webhook.objects.reaching(task).select_related(
            "project", "organization").nearest_first(), task.rights),
    })


def _save_task_form(request, task=None):
    initial = {"project": request.GET.get("project")} if task is None and request.GET.get("project") else None
    form = TaskForm(request.POST or None, instance=task, user=request.user, initial=initial)
    formsets = task_formsets(request.user, request.POST or None, instance=task, parameter_help=form.parameter_help)
    valid = request.method == "POST" and form.is_valid()
    valid = valid and all([formset.is_valid() for formset in formsets.values()])  # each checked, for its errors
    if request.method == "POST":
        form.tabs_with_errors = [FORMSET_TABS[prefix] for prefix, formset in formsets.items()
                                 if formset.is_bound and not formset.is_valid()]
    if valid:
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
    """Refuse a save that would create a dependency cycle, or use another organization's connection."""
    cycle = find_cycle(task)
    if cycle:
        raise ValueError("These dependencies would make a cycle: " + " → ".join(t.name for t in cycle))
    outside = task.connections_outside_organization()
    if outside:
        raise ValueError("These connections belong to another organization than the project: "
                         + ", ".join(connection.name for connection in outside))


def task_new(request):
    if not Project.objects.editable_by(request.user).exists():
        raise PermissionDenied("Creating a task needs the editor role in an organization with a project.")
    return _save_task_form(request)


def task_edit(request, pk):
    return _save_task_form(request, access.get_task(request.user, pk, access.EDIT))


def task_delete(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    if request.method == "POST":
        name = task.name
        task.delete()
        messages.success(request, f"Task {name} deleted.")
        return redirect("tasks:list")
    return render(request, "tasks/task_confirm_delete.html", {"task": task})


@require_POST
def task_duplicate(request, pk):
    """A disabled copy, here or (as a task template) in another project of the organization: the settings the
    task inherits stay inherited, so the copy takes them from its new project."""
    task = access.get_task(request.user, pk, access.VIEW)
    project = task.project
    if request.POST.get("template_project"):
        project = access.get_project(request.user, int_param(request, "template_project", minimum=1,
                                                                        source=request.POST), access.EDIT)
        if project.organization_id != task.project.organization_id:
            raise BadRequest("A task template is used within its organization: its connections belong there.")
    else:
        access.require(task.rights, access.EDIT)
    copy = task.duplicate(project=project)
    messages.success(request, f"Created {copy.name} (disabled). Review it, then enable it.")
    return redirect(copy)


@require_POST
def task_use_inherited(request, pk):
    """One click on Task Details or the task form: drop the task's own value of a shared setting."""
    task = access.get_task(request.user, pk, access.EDIT)
    name = request.POST.get("setting", "")
    if name not in inheritance.NAMES:
        raise BadRequest(f"{name!r} is not a shared setting.")
    task.use_inherited(name)
    item = task.effective_settings()[name]
    messages.success(request, f"{task.name} now uses the {item.level_label}'s {item.setting.verbose().lower()}: "
                              f"{item.display}.")
    return redirect(task)


@require_POST
def task_toggle(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    task.enabled = not task.enabled
    task.save(update_fields=["enabled", "updated_at"])
    messages.success(request, f"{task.name} is now {'enabled' if task.enabled else 'disabled'}.")
    return redirect(task)


@require_POST
def task_run(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    failed = queueing.failed_sends()
    run = enqueue_run(task, Run.Trigger.MANUAL, request.user)
    if queueing.failed_sends() > failed:  # saved, and started when the broker returns
        messages.warning(request, f"Run {run.pk} of {task.name} is {queueing.BROKER_DOWN}.")
    else:
        messages.success(request, f"Run {run.pk} of {task.name} is queued.")
    return redirect(reverse("tasks:detail", args=[task.pk]) + "#live-run")


@require_POST
def task_bulk(request):
    action = request.POST.get("action")
    if action not in ("enable", "disable", "run"):
        raise BadRequest("Choose enable, disable or run.")
    chosen = [int_param(request, "task", minimum=1, source={"task": value})
              for value in request.POST.getlist("task")]
    visible = Task.objects.visible_to(request.user).filter(pk__in=chosen)
    if len(visible) < len(set(chosen)):
        raise Http404("Some of the selected tasks do not exist, or you may not see them.")
    tasks = visible.editable_by(request.user)
    if len(tasks) < len(visible):
        raise PermissionDenied("Some of the selected tasks are ones you may look at but not change.")
    count = len(tasks)
    if not count:
        messages.warning(request, "Select at least one task you may change.")
    elif action == "run":
        for task in tasks:
            enqueue_run(task, Run.Trigger.MANUAL, request.user)
        messages.success(request, f"Queued {count_of(count, 'run')}.")
    else:
        tasks.set_enabled(action == "enable")
        messages.success(request, f"{action.capitalize()}d {count_of(count, 'task')}.")
    return safe_next(request, "tasks:list")


@require_POST
def task_try(request):
    """Test query or the file-name preview for the task form's unsaved data: an HTML fragment the form's
    script (static/js/task-try.js) puts in place. Only an editor of the chosen project may use it."""
    project_pk = int_param(request, "project", minimum=1, source=request.POST)
    if project_pk is None:
        return render(request, "tasks/_try_name_result.html", {"result": {"errors": ["Choose the project first."]}})
    project = access.get_project(request.user, project_pk, access.EDIT)
    task = None
    if request.POST.get("task"):
        task = access.get_task(request.user, int_param(request, "task", minimum=1, source=request.POST), access.EDIT)
    form = TaskForm(request.POST, instance=task, user=request.user)
    unsaved = try_out.unsaved_task(form)
    unsaved.project = project
    unsaved.with_effective_settings()  # a blank format, encoding ... is the project's or organization's
    formsets = task_formsets(request.user, request.POST, instance=task)
    params, secrets, moment = try_out.form_parameters(unsaved, formsets["parameters"])
    what = "query" if request.POST.get("try") == "query" else "name"
    if what == "query":
        result = try_out.test_query(unsaved, params, secrets)
    else:
        refused = [error for name in ("file_name", "zip_name") for error in form.errors.get(name, ())]
        result = try_out.file_names(unsaved, params, secrets, moment, refused)
    return render(request, f"tasks/_try_{what}_result.html", {"result": result})
