import django_tables2 as tables

from tasks.models import Task


class TaskTable(tables.Table):
    name = tables.Column(linkify=True)
    project = tables.Column(accessor="project__name", verbose_name="Project")
    owner = tables.Column(accessor="project__owner__username", verbose_name="Owner")
    enabled = tables.BooleanColumn()

    class Meta:
        model = Task
        fields = ("name", "project", "owner", "enabled", "run_rank")
        attrs = {"class": "table table-sm table-hover align-middle"}
