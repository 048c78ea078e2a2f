"""The searches behind the task form's long pickers (etl_portal/widgets.py SearchSelect): the first matches
among what the user may choose there, as buttons the picker's script puts in its select. The form's fields
check the choice again on save."""
from functools import reduce
from operator import or_

from django.db.models import Q
from django.shortcuts import render

from etl_portal.web import int_param
from projects import access
from projects.models import Organization, Project
from tasks.forms import task_choice_label, upstream_choices

LIMIT = 20


def _matches(request, queryset, fields, label, order):
    query = request.GET.get("q", "").strip()[:200]
    if query:
        queryset = queryset.filter(reduce(or_, [Q(**{f"{name}__icontains": query}) for name in fields]))
    found = list(queryset.order_by(*order)[:LIMIT + 1])
    return render(request, "widgets/_pick_matches.html", {
        "matches": [(item.pk, label(item)) for item in found[:LIMIT]], "more": len(found) > LIMIT, "query": query})


def pick_task(request):
    """"Runs after": the tasks the user sees, by task or project name; `exclude` is the task being edited."""
    tasks = upstream_choices(request.user)
    exclude = int_param(request, "exclude", minimum=1)
    if exclude:
        tasks = tasks.exclude(pk=exclude)
    return _matches(request, tasks, ("name", "project__name"), task_choice_label, ("project__name", "name", "pk"))


def pick_project(request):
    """The task's project: the projects the user may edit."""
    return _matches(request, Project.objects.editable_by(request.user), ("name",), str, ("name", "pk"))


def pick_person(request):
    """The file hub's people: members of the organizations the user works in."""
    people = access.users_of(Organization.objects.where_role(request.user))
    return _matches(request, people, ("username", "first_name", "last_name"), str, ("username", "pk"))
