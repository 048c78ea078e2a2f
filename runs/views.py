from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.formats import date_format
from django.utils.timezone import localtime

from accounts.middleware import activate_zone
from connections.protocols import ConnectorError
from etl_portal.web import Page, int_param
from projects import access
from runs import archive
from runs.models import FileDownload, RunFile
from tasks.models import Task

FILES_PER_PAGE = 20


def run_detail(request, pk):
    run = access.get_run(request.user, pk)
    activate_zone(request, run.task.project.time_zone)
    return render(request, "runs/run_detail.html", {
        "run": run, "rights": run.rights, "log_lines": run.log_lines.all(), "files": run.files.all(),
        "can_edit": run.rights.can_edit,
        "open_alerts": run.alerts.open(),
        "deliveries": run.deliveries.select_related("webhook", "notification").prefetch_related("tries"),
    })


def run_live(request, pk):
    """The live part of a run (status, time, rows, controls), which htmx polls while the run goes. With
    `on=task`, also the Task Details parts that follow it: its history row, the task's controls and, once the
    run ended, the file history (out-of-band swaps); on the run page, once it ended, the run's files."""
    run = access.get_run(request.user, pk)
    activate_zone(request, run.task.project.time_zone)
    on_task = request.GET.get("on") == "task"
    context = {"run": run, "can_edit": run.rights.can_edit, "on_task": on_task, "oob": on_task}
    if not on_task and run.is_finished:
        context.update(files=run.files.all(), files_oob=True)  # the run page's file list, now complete
    elif on_task and run.is_finished:
        context.update(files=Page(RunFile.objects.filter(run__task_id=run.task_id).select_related("run"), 1,
                                  FILES_PER_PAGE),
                       page_path=run.task.get_absolute_url())
    return render(request, "runs/_live.html", context)


def run_manifest(request, pk):
    """The run's delivery manifest (Run.manifest) as a JSON download."""
    run = access.get_run(request.user, pk)
    response = JsonResponse(run.manifest(), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-manifest.json"'
    return response


def run_log(request, pk):
    """New log lines after `after` (an id) and the run's status, for the live log; their times in the zone the
    page shows (the viewer's, else the project's), like the lines the page itself rendered."""
    run = access.get_run(request.user, pk)
    activate_zone(request, run.task.project.time_zone)
    after = int_param(request, "after", default=0, minimum=0)
    lines = run.log_lines.filter(id__gt=after)[:1000]
    return JsonResponse({
        "status": run.status,
        "status_label": run.get_status_display(),
        "finished": run.is_finished,
        "lines": [{"id": line.id, "time": date_format(localtime(line.created_at), "H:i:s"), "level": line.level,
                   "message": line.message} for line in lines],
    })


def file_download(request, pk):
    """Download a stored output file: to whoever may see its task or had it published to them. Logged."""
    allowed = RunFile.objects.filter(Q(run__task__in=Task.objects.visible_to(request.user))
                                     | Q(pk__in=RunFile.objects.published_to(request.user).values("pk")))
    run_file = get_object_or_404(allowed, pk=pk)
    if not run_file.is_available:
        raise Http404("This file is no longer kept (retention period passed).")
    try:
        handle = archive.open_file(run_file.stored_path)
    except FileNotFoundError:
        raise Http404("This file is no longer kept in the archive.") from None
    except ConnectorError as exc:  # the archive connection's server is unreachable or refused: say why
        return HttpResponse(f"{run_file.display_name} could not be read from the archive: {exc.message}",
                            status=503, content_type="text/plain; charset=utf-8")
    FileDownload.objects.create(run_file=run_file, user=request.user)
    return FileResponse(handle, as_attachment=True, filename=run_file.display_name)


def file_hub(request):
    """Files published to the user (by name or through a group), newest first."""
    files = (RunFile.objects.published_to(request.user).select_related("run__task__project")
             .order_by("-created_at", "-id"))
    paginator = Paginator(files, 50)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "runs/file_hub.html", {"page": page})
