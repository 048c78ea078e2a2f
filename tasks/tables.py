import django_tables2 as tables

from tasks.models import Task


class TaskTable(tables.Table):
    # Cells are written by tasks/_task_table.html; the columns here give headers, sorting and order.
    selection = tables.CheckBoxColumn(accessor="pk", attrs={"th__input": {"id": "select-all"}})
    name = tables.Column()
    project = tables.Column(accessor="project__name", verbose_name="Project", order_by=("project__name", "run_rank"))
    owner = tables.Column(accessor="project__owner__username", verbose_name="Owner")
    enabled = tables.Column()
    last_run_status = tables.Column(verbose_name="Last run")
    last_run_at = tables.Column(verbose_name="Last run at")
    next_run_at = tables.Column(verbose_name="Next run")

    class Meta:
        model = Task
        fields = ("selection", "name", "project", "owner", "enabled", "last_run_status", "last_run_at",
                  "next_run_at")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "task-table"}
        template_name = "tasks/_task_table.html"
        empty_text = "No tasks match."

