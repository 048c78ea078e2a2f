"""History pages of a task and of a project: the same visibility checks as their detail pages."""
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from audit.changes import history_entries, organization_sources, project_sources, task_sources
from projects.models import Project
from tasks.models import Task

PER_PAGE = 50
# Deeper pages cost more to merge; older history stays in the admin's per-object history.
MAX_PAGE = 100


def _page(request):
    try:
        return min(max(int(request.GET.get("page", 1)), 1), MAX_PAGE)
    except (TypeError, ValueError):
        return 1


def _render(request, obj, sources, kind, back_url):
    page = _page(request)
    entries, has_more = history_entries(sources, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    return render(request, "audit/history.html", {
        "object": obj, "kind": kind, "back_url": back_url, "entries": entries, "page": page,
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if has_more and page < MAX_PAGE else None,
    })


def task_history(request, pk):
    task = get_object_or_404(Task.objects.visible_to(request.user).select_related("project"), pk=pk)
    return _render(request, task, task_sources(task.pk), "task", task.get_absolute_url())


def organization_history(request, pk):
    """The organization's own changes: its shared settings (at the organization level), parameters and webhooks."""
    from projects import access

    organization = access.get_organization(request.user, pk)
    return _render(request, organization, organization_sources(organization.pk), "organization",
                   reverse("organizations:settings", args=[organization.pk]))


def project_history(request, pk):
    project = get_object_or_404(Project.objects.visible_to(request.user), pk=pk)
    return _render(request, project, project_sources(project.pk), "project",
                   reverse("projects:detail", args=[project.pk]))
