from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect, render

from projects import access
from projects.forms import ProjectForm, ProjectParameterFormSet, TriggerFormSet
from projects.models import Organization, Project, Role


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
        messages.success(request, f"Project {saved.name} saved.")
        return redirect("project-detail", pk=saved.pk)
    return render(request, "projects/project_form.html", {"form": form, "project": project,
                                                          "formsets": {"triggers": triggers,
                                                                       "parameters": parameters}})


def project_new(request):
    if not Organization.objects.where_role(request.user, Role.EDITOR).exists():
        raise PermissionDenied("Creating a project needs the editor role in an organization.")
    return _save_project_form(request)


def project_edit(request, pk):
    return _save_project_form(request, access.get_project(request.user, pk, access.EDIT))
