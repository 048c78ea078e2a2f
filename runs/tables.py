"""The runs page's table (django-tables2): headers, sorting and paging; rows are written by runs/_run_table.html."""
import django_tables2 as tables
from django.db.models import F

from runs.models import Run


class RunTable(tables.Table):
    selection = tables.CheckBoxColumn(accessor="pk", orderable=False,
                                      attrs={"th__input": {"id": "select-all", "data-selects": "run",
                                                           "aria-label": "Select every failed run shown"}})
    id = tables.Column(verbose_name="Run", orderable=False)
    task = tables.Column(accessor="task__name", orderable=False)
    project = tables.Column(accessor="task__project__name", orderable=False)
    owner = tables.Column(accessor="task__project__owner__username", orderable=False)
    status = tables.Column(orderable=False)
    trigger = tables.Column(orderable=False)
    scheduled_for = tables.Column(verbose_name="For", orderable=False)
    started = tables.Column(accessor="started_at", verbose_name="Started")
    duration = tables.Column(accessor="took", verbose_name="Duration")
    rows = tables.Column(orderable=False)

    class Meta:
        model = Run
        fields = ("selection", "id", "task", "project", "owner", "status", "trigger", "scheduled_for", "started",
                  "duration", "rows")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "run-table"}
        template_name = "runs/_run_table.html"
        empty_text = "No runs match."
        order_by_field = "sort"

    # Runs not started yet (no start, no duration) come last either way; the id breaks ties, so pages never overlap.
    def order_started(self, queryset, is_descending):
        return self._order(queryset, "started_at", is_descending), True

    def order_duration(self, queryset, is_descending):
        return self._order(queryset, "took", is_descending), True

    @staticmethod
    def _order(queryset, name, descending):
        column = F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True)
        return queryset.order_by(column, "-id" if descending else "id")
