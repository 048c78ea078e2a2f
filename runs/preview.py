"""The preview of a task: what a run at a given moment would use (every parameter, the names, the folders, the
query), every secret masked. Shown on the task's page before anything runs.
"""
from connections.protocols import ConnectorError
from etl_portal.masking import MASK
from runs import files
from runs.formats import EXTENSIONS
from runs.masking import mask, secret_values
from runs.parameters import named_values, render, resolve, run_moment, stored_parameters, value_text, zip_file_name
from runs.sources import preview_query


def preview(task, when=None):
    """What a run at `when` (default now) would use: every parameter, the file name, the query."""
    task = task.with_effective_settings()
    moment = run_moment(task, None, when)
    errors = []
    params = {}
    try:
        params = resolve(task, None, moment)
    except ConnectorError as exc:
        errors.append(exc.message)
    # The task's connection secrets too: a folder or file name may hold a password by mistake.
    secrets = secret_values(task)
    rows = [{"key": key, "value": value_text(value), "origin": "built-in", "sensitive": False, "raw": ""}
            for key, value in named_values(task, None, moment).items()]
    for key, raw, sensitive, origin in stored_parameters(task):
        rows = [row for row in rows if row["key"] != key]
        rows.append({"key": key, "value": MASK if sensitive else value_text(params.get(key, "")),
                     "origin": origin, "sensitive": sensitive, "raw": MASK if sensitive else raw})

    def attempt(label, make):
        try:
            return mask(make(), values=secrets)
        except ConnectorError as exc:
            errors.append(f"{label}: {exc.message}")
            return ""

    extension = EXTENSIONS.get(task.file_format, "csv")
    result = {
        "when": moment.isoformat(),
        "when_text": moment.strftime("%Y-%m-%d %H:%M %Z"),
        "date": moment.date().isoformat(),
        "time_zone": str(moment.tzinfo),
        "parameters": rows,
        "file_name": attempt("File name", lambda: files.output_name(render(task.file_name, params), task.name,
                                                                         extension)),
        "zip_name": attempt("Zip name", lambda: zip_file_name(task, params)) if task.zip_output else "",
        "folders": [],
        "query": "",
        "query_preview": "",
        "source_items": [],  # (label, text) lines of the source kind's preview
        "errors": errors,  # masked below: a format error quotes the value it could not format
    }
    if task.pk:
        for destination in task.destinations_in_effect():
            result["folders"].append({"connection": destination.connection.name,
                                      "folder": attempt("Folder", lambda: render(destination.folder, params))})
    result.update(task.source.preview(task, params, secrets=secrets, attempt=attempt))
    result["errors"] = [mask(error, values=secrets) for error in errors]
    return result


def query_preview(task, params, secrets):
    """(the query as written, as it will run): the source stage's view (remote texts, statements an ODBC
    driver cannot take), the values written in."""
    try:
        original, shown = preview_query(task, params)
    except ConnectorError as exc:
        original, shown = task.query, f"-- {exc.message}"
    return mask(original, values=secrets), mask(shown, values=secrets)
