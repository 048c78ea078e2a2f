"""A task source kind is one class: a kind defined here alone is offered and checked by the real task form,
shown on the task page, and runs to a delivered file, with no other module edited."""
import pytest
from django.core.management import call_command

from runs import files, parameters
from runs.context import OutputFile
from runs.execution import execute_next
from runs.models import Run
from tasks import source_kinds
from tasks.models import Task
from tests.fixtures.sources import log_text

ROWS = "a,b\n1,2"


class ConstantRowsKind(source_kinds.SourceKind):
    """Rows typed into the task, delivered as a CSV file: the rows are held in the task's free `query` field."""

    key = "constant"
    label = "Constant rows"
    fields = ("query",)

    def clean(self, form, cleaned):
        super().clean(form, cleaned)
        self.require(form, cleaned, "query", message="Type the rows, one per line.")

    def produce(self, ctx):
        name = files.output_name(parameters.render(ctx.task.file_name, ctx.params), ctx.task.name, "csv")
        lines = ctx.task.query.splitlines()
        (ctx.folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
        ctx.log(f"Wrote {len(lines) - 1} constant rows")
        return [OutputFile(path=ctx.folder / name, name=name, rows=len(lines) - 1)]

    def preview(self, task, params, *, secrets, attempt):
        return {"source_items": [("Columns", task.query.splitlines()[0] if task.query else "")]}

    def summary(self, task):
        return [f"{len(task.query.splitlines()) - 1} rows typed in"]


@pytest.fixture
def constant_rows():
    source_kinds.register(ConstantRowsKind)
    yield source_kinds.get("constant")
    source_kinds.unregister("constant")


def form_data(project, dropbox, **fields):
    data = {
        "project": project.pk, "name": "Constants", "run_rank": 1, "enabled": "on", "source_kind": "constant",
        "text_location": "inline", "file_name": "constants_{today:%Y}.csv", "file_format": "csv",
        "csv_delimiter": ",", "csv_quoting": "minimal", "line_terminator": "lf", "encoding": "utf-8",
        "retention_days": 30, "on_no_files": "fail", "file_handling": "as_is", "priority": 50, "max_instances": 1,
        "dependency_mode": "all", "retries": 0, "retry_delay_seconds": 60, "retry_max_delay_seconds": 600,
        "processing_location": "", "destinations-0-connection": dropbox.pk, "destinations-0-folder": "in",
        "destinations-0-overwrite": "on", "destinations-0-position": 0,
    }
    for prefix, rows in (("destinations", 1), ("parameters", 0), ("conditions", 0), ("notifications", 0),
                         ("dependencies", 0)):
        data.update({f"{prefix}-TOTAL_FORMS": rows, f"{prefix}-INITIAL_FORMS": 0})
    return {**data, **fields}


def test_a_kind_defined_in_one_module_is_created_by_the_form_and_runs_to_a_delivered_file(
        constant_rows, client, owner, project, dropbox, django_capture_on_commit_callbacks):
    # No migration for a new kind: makemigrations --check exits when the models differ from the migrations.
    call_command("makemigrations", "tasks", "audit", "--check", "--dry-run", verbosity=0)
    client.force_login(owner)
    page = client.get("/tasks/new/").content.decode()
    assert '<option value="constant">Constant rows</option>' in page
    assert 'data-kinds="query constant"' in page  # the rows' field shows for this kind too

    refused = client.post("/tasks/new/", form_data(project, dropbox)).content.decode()
    assert "Type the rows, one per line." in refused and not Task.objects.exists()

    response = client.post("/tasks/new/", form_data(project, dropbox, query=ROWS, file_pattern="*.csv"))
    task = Task.objects.get(name="Constants")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert task.source_kind == "constant" and task.query == ROWS
    assert task.file_pattern == ""  # a field only another kind uses is not kept

    detail = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Constant rows" in detail and "1 rows typed in" in detail
    preview = client.get(f"/tasks/{task.pk}/preview/").content.decode()
    assert "Columns" in preview and "<code>a,b</code>" in preview

    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/tasks/{task.pk}/run/")  # the Run now button queues it; this process is the worker
    assert execute_next(worker="test:1:1") == "succeeded"
    run = Run.objects.get(task=task)
    assert "Wrote 1 constant rows" in log_text(run)
    [delivered] = (dropbox.folder / "in").iterdir()
    assert delivered.name == f"constants_{run.scheduled_for.year}.csv"
    assert delivered.read_bytes() == b"a,b\n1,2\n"


def test_a_task_of_a_kind_no_module_registers_any_more_shows_and_fails_its_runs_clearly(
        constant_rows, client, owner, project, dropbox):
    task = Task.objects.create(project=project, name="Constants", source_kind="constant", query=ROWS)
    source_kinds.unregister("constant")
    client.force_login(owner)
    assert "constant" in client.get(f"/tasks/{task.pk}/").content.decode()
    run = Run.objects.create(task=task)
    execute_next(worker="test:1:1")
    run.refresh_from_db()
    assert run.status == "failed" and run.error == "The source kind 'constant' is not available"
    edit = client.post(f"/tasks/{task.pk}/edit/", form_data(project, dropbox, query=ROWS)).content.decode()
    assert "Select a valid choice. constant is not one of the available choices." in edit


class CommandLikeKind(ConstantRowsKind):
    key = "shellish"
    label = "Shell-like rows"
    code_fields = ("query",)


def test_a_kind_that_declares_code_fields_needs_the_code_permission(client, member, owner, project, dropbox,
                                                                     organization):
    source_kinds.register(CommandLikeKind)
    try:
        assert Task.code_of({"source_kind": "shellish", "query": "x"}) == ("shellish", "x")
        assert Task.code_of({"source_kind": "query", "query": "x"}) == ()
        organization.memberships.filter(user=member).update(role="editor")
        client.force_login(member)  # an editor who may not write code
        refused = client.post("/tasks/new/", form_data(project, dropbox, source_kind="shellish", query=ROWS))
        assert not Task.objects.exists()
        assert "Writing code that runs on the portal" in refused.content.decode()
    finally:
        source_kinds.unregister("shellish")
