"""`{% recent_changes task %}` / `{% recent_changes project %}`: a short box for the detail pages.

One query (a UNION over the history tables), so the detail pages stay fast; the full diff is on the
history page it links to.
"""
from django import template
from django.urls import reverse

from audit.changes import project_sources, recent_entries, task_sources
from projects.models import Project

register = template.Library()
RECENT = 5


@register.inclusion_tag("audit/_recent.html")
def recent_changes(obj):
    if isinstance(obj, Project):
        sources, url = project_sources(obj.pk), reverse("projects:history", args=[obj.pk])
    else:
        sources, url = task_sources(obj.pk), reverse("tasks:history", args=[obj.pk])
    return {"entries": recent_entries(sources, limit=RECENT), "history_url": url}
