"""The runs page's filters (django-filter): every choice offered, and every value accepted, comes from what the
user may see (projects/access.py decides through the querysets' `visible_to`), so another organization's
project, owner or task is neither listed nor usable as a filter value: it is an invalid choice."""
import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from projects.models import Project
from runs.models import Run
from tasks.models import Task


def _visible_projects(request):
    return Project.objects.visible_to(request.user).order_by("name") if request else Project.objects.none()


def _visible_owners(request):
    if request is None:
        return get_user_model().objects.none()
    return get_user_model().objects.filter(
        pk__in=Project.objects.visible_to(request.user).values("owner_id")).order_by("username")


def _visible_tasks(request):
    return Task.objects.visible_to(request.user) if request else Task.objects.none()


class RunFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search",
                                  widget=forms.TextInput(attrs={"placeholder": "Task, project, owner or run #"}))
    status = django_filters.ChoiceFilter(choices=Run.Status.choices, empty_label="Any status")
    # Run.Trigger's own choices: a trigger added there (backfill) is offered without a change here.
    trigger = django_filters.ChoiceFilter(choices=Run.Trigger.choices, empty_label="Any trigger")
    project = django_filters.ModelChoiceFilter(field_name="task__project", queryset=_visible_projects,
                                               empty_label="Any project")
    owner = django_filters.ModelChoiceFilter(field_name="task__project__owner", queryset=_visible_owners,
                                             empty_label="Any owner")
    # By id, not a select of 10,000 tasks: task names in the table link to their filter, and the search box finds
    # tasks by name.
    task = django_filters.ModelChoiceFilter(queryset=_visible_tasks, label="Task id",
                                            widget=forms.NumberInput(attrs={"min": 1}))
    started_from = django_filters.DateTimeFilter(
        field_name="started_at", lookup_expr="gte", label="Started from",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
    started_to = django_filters.DateTimeFilter(
        field_name="started_at", lookup_expr="lt", label="Started before",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    class Meta:
        model = Run
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for form_field in self.form.fields.values():
            select = isinstance(form_field.widget, forms.Select)
            if select:  # read once: the page writes the options itself (a model choice list counts them on len())
                form_field.listed_choices = [choice for choice in form_field.choices]  # list() would COUNT first
            form_field.widget.attrs.setdefault("class", f"form-{'select' if select else 'control'} "
                                                        f"form-{'select' if select else 'control'}-sm")

    def search(self, queryset, name, value):
        value = value.strip()
        if value.lstrip("#").isdigit():
            return queryset.filter(pk=int(value.lstrip("#")))
        return queryset.filter(Q(task__name__icontains=value) | Q(task__project__name__icontains=value)
                               | Q(task__project__owner__username__icontains=value))
