"""Test query and the file-name preview of the task form: what the unsaved form would do, before saving.

Both take the form's posted data as it stands (a Task built from the fields that are valid, the task's
parameters from the Parameters list) and resolve parameters as a run now would (runs/parameters.py); the
query is bound like a run binds it (runs/sql_parameters.bind_query) and run through the connector's
`sample`, read-only where the engine allows, within the connection's timeout. Every text shown is masked
(connection secrets, sensitive parameter values).
"""
from connections.protocols import DATABASE, ConnectorError
from etl_portal.masking import MASK
from runs import files, sources, text_locations
from runs.errors import PipelineError
from runs.extract import render_query
from runs.masking import mask, secret_values
from runs.formats import EXTENSIONS
from runs.parameters import evaluate, named_values, paramstyle_for, render, run_moment, value_text, zip_file_name
from runs.sql_parameters import bind_query, display_query

ROWS = 20


def unsaved_task(form):
    """The Task the form would save, from its valid fields (invalid ones keep their defaults)."""
    form.is_valid()  # fills form.instance with the cleaned values; its errors are the form's business
    return form.instance


def form_parameters(task, formset):
    """(values as a run now would have them, secret values, rows shown): named values, then the project's
    parameters, then the task's from the posted Parameters list (the saved ones when the list is unchanged)."""
    moment = run_moment(task)
    named = named_values(task, None, moment)
    values, secrets = dict(named), []
    stored = [(p.key, p.value, p.sensitive, "organization") for p in task.project.organization.parameters.all()]
    stored += [(p.key, p.value, p.sensitive, "project") for p in task.project.parameters.all()]
    formset.is_valid()
    for form in formset.forms:
        data = getattr(form, "cleaned_data", {}) or {}
        if data.get("key") and not data.get("DELETE"):
            stored.append((data["key"], data.get("value") or "", bool(data.get("sensitive")), "task"))
    for key, raw, sensitive, _origin in stored:
        values[key] = raw if sensitive else evaluate(raw, named, moment)
        if sensitive and raw:
            secrets.append(raw)
    return values, secret_values(task) + secrets, moment


def file_names(task, params, secrets, moment, form_errors=()):
    """The output file's and the zip's names as a run now would write them, or the reason they cannot be
    (`form_errors`: what the form itself refused in those names, e.g. an unknown parameter)."""
    extension = EXTENSIONS.get(task.file_format, "csv")
    result = {"when": moment.strftime("%Y-%m-%d %H:%M"), "zone": str(moment.tzinfo),
              "errors": [mask(error, values=secrets) for error in form_errors]}
    if result["errors"]:
        return result
    try:
        result["file_name"] = mask(files.output_name(render(task.file_name, params), task.name or "task",
                                                     extension), values=secrets)
        result["zip_name"] = mask(zip_file_name(task, params), values=secrets) if task.zip_output else ""
    except (PipelineError, ConnectorError) as exc:
        result["errors"].append(mask(exc.message, values=secrets))
    return result


def test_query(task, params, secrets):
    """The first ROWS rows, the columns with their types, the query as it will run and the bound values."""
    result = {"errors": [], "query": "", "bound": [], "columns": None, "rows": [], "more": False, "read_only": ""}
    connection = task.source_connection
    if connection is None:
        result["errors"].append("Choose the database connection first (Source tab).")
        return result
    if not connection.has(DATABASE):
        result["errors"].append(f"{connection.name} is a {connection.kind_label} connection: Test query needs a "
                                "database.")
        return result
    try:
        database = connection.connector()
        original = text_locations.load_text(task, "source")
        text, _removed = sources.runnable_text(task, original)
        text = render_query(text)
        sql, values = bind_query(text, params, style=paramstyle_for(database))
        result["query"] = mask(display_query(text, params), values=secrets)
        result["bound"] = [MASK if value in secrets else value_text(value) for value in values or ()]
        sample = database.sample(sql, values, limit=ROWS)
    except (PipelineError, ConnectorError) as exc:
        result["errors"].append(mask(exc.message, values=secrets))
        return result
    result.update(columns=sample.columns, more=sample.more, read_only=sample.read_only,
                  rows=[[mask(value_text(value), values=secrets) for value in row] for row in sample.rows])
    return result
