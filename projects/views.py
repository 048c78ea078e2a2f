from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from alerts.models import Webhook
from etl_portal.web import count_of
from projects import access
from projects.forms import ProjectForm, ProjectParameterFormSet, TriggerFormSet
from projects.models import Organization, Project, Role
from tasks import inheritance


def project_list(request):
    projects = (Project.objects.visible_to(request.user).select_related("owner", "organization")
                .annotate(task_count=Count("tasks")).order_by("name"))
    return render(request, "projects/project_list.html", {
        "projects": projects, "can_create": Organization.objects.where_role(request.user, Role.EDITOR).exists()})


def project_detail(request, pk):
    project = access.get_project(request.user, pk)
    tasks = project.tasks.with_run_summary().order_by("run_rank", "name")
    return render(request, "projects/project_detail.html", {
        "project": project,
        "tasks": tasks,
        "triggers": project.triggers.all(),
        "parameters": project.parameters.all(),
        "backfills": project.backfills.select_related("task", "requested_by")[:5],
        # The project's and its organization's, each with the rights of its level.
        "webhooks": access.with_webhook_rights(request.user, Webhook.objects.reaching_project(project)
                                               .select_related("organization").nearest_first(),
                                               project.rights),
        "can_edit": project.rights.can_edit,
        "rights": project.rights,
    })


def _save_project_form(request, project=None):
    form = ProjectForm(request.POST or None, instance=project, user=request.user)
    triggers = TriggerFormSet(request.POST or None, instance=project or Project(), prefix="triggers")
    parameters = ProjectParameterFormSet(request.POST or None, instance=project or Project(), prefix="parameters")
    if request.method == "POST" and form.is_valid() and triggers.is_valid() and parameters.is_valid():
        with transaction.atomic():
            saved = form.save()
            # Saving a trigger arms (and deleting one removes) its django-q2 schedule through signals.
            for formset in (triggers, parameters):
                formset.instance = saved
                formset.save()
            if form.cleaned_data.get("template"):
                inheritance.copy_project_settings(form.cleaned_data["template"], saved)
        messages.success(request, f"Project {saved.name} saved.")
        return redirect("projects:detail", pk=saved.pk)
    return render(request, "projects/project_form.html", {"form": form, "project": project,
                                                          "formsets": {"triggers": triggers,
                                                                       "parameters": parameters}})


def project_new(request):
    if not Organization.objects.where_role(request.user, Role.EDITOR).exists():
        raise PermissionDenied("Creating a project needs the editor role in an organization.")
    return _save_project_form(request)


def project_edit(request, pk):
    return _save_project_form(request, access.get_project(request.user, pk, access.EDIT))


@require_POST
def project_run(request, pk):
    """Start the project now, as its triggers (and `run_project`) would: series or parallel."""
    from runs import orchestration, queueing
    from runs.models import Run

    project = access.get_project(request.user, pk, access.EDIT)
    if not project.enabled:
        messages.error(request, f"Project {project.name} is disabled; enable it first.")
        return redirect("projects:detail", pk=project.pk)
    failed = queueing.failed_sends()
    runs = orchestration.start_project(project, Run.Trigger.MANUAL, user=request.user)
    queued = sum(run.status == Run.Status.QUEUED for run in runs)
    if not runs:
        messages.warning(request, f"Project {project.name} has no enabled task to run.")
    else:
        skipped = f", {count_of(len(runs) - queued, 'task')} skipped (still running)" if len(runs) > queued else ""
        note = f" ({queueing.BROKER_DOWN})" if queueing.failed_sends() > failed else ""
        messages.success(request, f"Started {project.name}: {count_of(queued, 'run')} queued{skipped}{note}.")
    return redirect("projects:detail", pk=project.pk)


@require_POST
def project_set_enabled(request, pk):
    """Enable or disable every task of the project (`enabled=1` or `0`); each change enters the task's history."""
    project = access.get_project(request.user, pk, access.EDIT)
    enabled = request.POST.get("enabled") == "1"
    changed = project.tasks.set_enabled(enabled)
    messages.success(request, f"{'Enabled' if enabled else 'Disabled'} {count_of(changed, 'task')} of {project.name}.")
    return redirect("projects:detail", pk=project.pk)


@require_POST
def project_duplicate(request, pk):
    copy = access.get_project(request.user, pk, access.EDIT).duplicate()
    messages.success(request, f"Created {copy.name} (disabled, with its tasks disabled). Review it, then enable it.")
    return redirect("projects:detail", pk=copy.pk)


def cron_preview(request):
    """The words and next five times of a typed cron expression, in the zone given (the trigger's or the
    project's): an HTML fragment static/js/cron-preview.js puts beside the box as it is typed."""
    from django.utils import timezone

    from projects import cron_expression, triggers
    from projects.models import Trigger

    expression = request.GET.get("expression", "").strip()[:200]
    zone_name = request.GET.get("zone", "").strip()[:64] or "UTC"
    context = {"expression": expression, "zone": zone_name, "times": [], "error": ""}
    if expression:
        try:
            zone = triggers.time_zone(zone_name)
            trigger = Trigger(kind="cron", time_zone=zone_name, **cron_expression.fields_of(expression))
            triggers.validate(trigger)
            context["description"] = cron_expression.description(expression)
            # Written out here: the template's date filter would show them in the page's zone, not this one.
            context["times"] = [(moment.isoformat(), moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z"))
                                for moment in triggers.next_fire_times(trigger, timezone.now(), count=5)]
        except ValidationError as exc:
            context["error"] = " ".join(exc.messages)
        except (ValueError, OverflowError) as exc:  # a date beyond what datetime holds
            context["error"] = f"No run time can be worked out: {exc}"
    return render(request, "projects/_cron_preview.html", context)
