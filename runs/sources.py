"""Source stage: produce the run's files from the task's source (query, files, script, SSH command)."""
import posixpath
import re
import threading

from runs import parameters, pipeline, scripts, text_locations
from runs.context import OutputFile
from runs.formats import EXTENSIONS, CsvOptions
from runs.rewrite import RewriteError, rewrite_file

# Statements an ODBC source cannot take: batch separators of SQL Server tools, and switching databases
# (the connection already names its database).
GO_LINE = re.compile(r"^[ \t]*GO(?:[ \t]+\d+)?[ \t]*;?[ \t]*(?:--[^\n]*)?$", re.IGNORECASE)
USE_LINE = re.compile(r"^[ \t]*USE[ \t]+(?:\[[^\]\n]+\]|\"[^\"\n]+\"|`[^`\n]+`|[\w.$#@]+)[ \t]*;?[ \t]*(?:--[^\n]*)?$",
                      re.IGNORECASE)
LOG_LINE_LIMIT = 5000


def produce(ctx):
    """Return the list of OutputFile the source produced in ctx.folder."""
    producer = PRODUCERS.get(ctx.task.source_kind)
    if producer is None:
        raise pipeline.PipelineError(f"The source kind {ctx.task.get_source_kind_display()!r} is not available",
                                     step="settings")
    return producer(ctx)


def source_connector(ctx, category, what=None):
    source = ctx.task.source_connection
    if source is None:
        raise pipeline.PipelineError("The task has no source connection", step="settings")
    connector = source.connector()
    if connector.category != category:
        raise pipeline.PipelineError(f"{source.name} is a {source.kind_label} connection, not "
                                     f"{what or 'a ' + category}", step="settings")
    return connector


# --- database query ------------------------------------------------------------------------------------

def without_odbc_only_statements(sql):
    """(sql without `USE db` statements and `GO` separator lines, what was removed)."""
    kept, removed = [], []
    for line in sql.split("\n"):
        if GO_LINE.match(line):
            removed.append("GO")
            # A separator ended a batch: keep the statements apart.
            for index in range(len(kept) - 1, -1, -1):
                if kept[index].strip():
                    if not kept[index].rstrip().endswith(";") and "--" not in kept[index]:
                        kept[index] = kept[index].rstrip() + ";"
                    break
        elif USE_LINE.match(line):
            removed.append(line.strip())
        else:
            kept.append(line)
    return "\n".join(kept).strip("\n"), removed


def is_odbc(task):
    return task.source_connection is not None and task.source_connection.kind == "odbc"


def runnable_text(task, original):
    """The query text an engine can take (ODBC-only statements removed), before parameters."""
    if is_odbc(task):
        return without_odbc_only_statements(original)
    return original, []


def preview_query(task, params):
    """(the query as stored, the query exactly as it will run) for the task page.

    A query loaded from a connection is fetched now (the cached copy when that fails); when it cannot be
    had at all, both texts say why as an SQL comment.
    """
    try:
        original = text_locations.load_text(task, "source")
    except pipeline.PipelineError as exc:
        note = f"-- The query could not be loaded: {exc.message}"
        return note, note
    except Exception as exc:  # a connector failure must not break the task page
        note = f"-- The query could not be loaded: {getattr(exc, 'message', None) or exc}"
        return note, note
    text, _ = runnable_text(task, original)
    try:
        return original, parameters.display_query(text, params)
    except pipeline.PipelineError as exc:
        return original, f"-- {exc.message}"


def output_extension(task):
    return EXTENSIONS.get(task.file_format, "csv")


def produce_query(ctx):
    task = ctx.task
    database = source_connector(ctx, "database", "a database")
    original = text_locations.load_text(task, "source", warn=ctx.warn, log=ctx.log)
    text, removed = runnable_text(task, original)
    if removed:
        ctx.log(f"Removed what an ODBC source cannot run: {', '.join(removed)}")
    text = pipeline.render_query(text)
    sql, values = parameters.bind_query(text, ctx.params, style=parameters.paramstyle_for(database))
    shown = parameters.mask(parameters.display_query(text, ctx.params), values=ctx.secrets)
    type(ctx.run).objects.filter(pk=ctx.run.pk).update(query_text=shown)
    name = pipeline.output_name(parameters.render(task.file_name, ctx.params), task.name, output_extension(task))
    ctx.log(f"Running query on {task.source_connection.name}")
    try:
        # Cancelling the run (or its timeout) cancels the statement on the server, not just the wait.
        from runs.execution import on_cancel

        with on_cancel(database.cancel):
            extract = pipeline.extract_to_csv(
                database, sql, ctx.folder / name, CsvOptions.for_task(task),
                progress=lambda rows: ctx.log(f"{rows:,} rows written so far"),
                file_format=task.file_format, params=values,
            )
    except pipeline.NoResultSet as outcome:
        ctx.log(f"The statement ran and returned no result set ({outcome.rowcount:,} rows affected), "
                "so there is no file to deliver")
        return []
    type(ctx.run).objects.filter(pk=ctx.run.pk).update(rows=extract.rows)
    for warning in extract.warnings:
        ctx.warn(warning)
    ctx.log(f"Query finished: {extract.rows:,} rows, {len(extract.columns)} columns")
    return [OutputFile(path=extract.path, name=name, rows=extract.rows)]


# --- files from a server -------------------------------------------------------------------------------

def file_patterns(task, params):
    """Names or shell wildcards (several separated by `;`), with parameters and date codes put in."""
    patterns = [parameters.render(part.strip(), params) for part in (task.file_pattern or "").split(";")]
    return [pattern for pattern in patterns if pattern] or ["*"]


def no_files(ctx, message):
    choice = ctx.task.on_no_files
    if choice == "warn":
        ctx.warn(message)
    elif choice == "succeed":
        ctx.log(message)
    else:
        raise pipeline.PipelineError(message, step="folder")
    return []


def produce_files(ctx):
    task = ctx.task
    store = source_connector(ctx, "files", "a file server (SFTP, FTP, SMB or a local folder)")
    folder = store.join(parameters.render(task.file_folder, ctx.params))
    patterns = file_patterns(task, ctx.params)
    where = f"{folder or '/'} on {task.source_connection.name}"
    with store.session() as session:
        names = []
        for pattern in patterns:
            if "/" in pattern:
                raise pipeline.PipelineError(f"The file pattern {pattern!r} may not contain a folder: put the "
                                             "folder in the folder field", step="settings")
            names += [name for name in session.list(folder, pattern) if name not in names]
        if not names:
            return no_files(ctx, f"No file matching {' or '.join(patterns)} in {where}")
        ctx.log(f"Found {len(names)} file{'s' if len(names) != 1 else ''} matching {' or '.join(patterns)} in {where}")
        downloaded = []
        for name in names:
            session.get(posixpath.join(folder, name), str(ctx.folder / name))
            ctx.log(f"Downloaded {name} ({(ctx.folder / name).stat().st_size:,} bytes)")
            downloaded.append(name)
    ctx.fetched_source_files = [(folder, name) for name in downloaded]  # deleted after delivery, if asked
    outputs = [OutputFile(path=ctx.folder / name, name=name) for name in downloaded]
    if task.file_handling == "rewrite":
        outputs = [rewrite_output(ctx, output) for output in outputs]
    elif task.file_name and len(outputs) == 1:
        outputs[0].name = pipeline.output_name(parameters.render(task.file_name, ctx.params), task.name)
    return outputs


def rewrite_output(ctx, output):
    task = ctx.task
    extension = output_extension(task)
    name = output.name
    if task.file_name and len(getattr(ctx, "fetched_source_files", ())) == 1:
        name = pipeline.output_name(parameters.render(task.file_name, ctx.params), task.name, extension)
    elif task.file_format != "csv":
        name = f"{name.rsplit('.', 1)[0] if '.' in name else name}.{extension}"
    target = ctx.folder / ".rewritten" / name
    target.parent.mkdir(exist_ok=True)
    try:
        rows, encoding, delimiter = rewrite_file(output.path, target, CsvOptions.for_task(task), task.file_format)
    except RewriteError as exc:
        raise pipeline.PipelineError(str(exc), step="settings") from None
    final = ctx.folder / name
    output.path.unlink()
    target.replace(final)
    shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(delimiter, delimiter)
    ctx.log(f"Re-wrote {output.name} ({encoding}, {shown}-delimited) as {name}: {rows:,} rows")
    return OutputFile(path=final, name=name, rows=rows)


def after_delivery(ctx):
    """Delete the source files once their copies were delivered, when the task asks for it."""
    fetched = getattr(ctx, "fetched_source_files", None)
    if not fetched or not ctx.task.delete_source_files:
        return
    store = ctx.task.source_connection.connector()
    try:
        with store.session() as session:
            for folder, name in fetched:
                session.delete(posixpath.join(folder, name))
    except pipeline.ConnectorError as exc:
        ctx.warn(f"The files were delivered, but the source files could not be deleted: {exc.message}")
        return
    ctx.log(f"Deleted {len(fetched)} source file{'s' if len(fetched) != 1 else ''} from "
            f"{ctx.task.source_connection.name}")


# --- Python script -------------------------------------------------------------------------------------

def produce_script(ctx):
    script = text_locations.load_script(ctx.task, "source", ctx.folder / ".scripts" / "source",
                                        warn=ctx.warn, log=ctx.log)
    before = {path.name for path in ctx.folder.iterdir()}
    listed = scripts.run_script(ctx, script, [], step="source")
    if listed is None:
        # No list printed: the files the script wrote in the run folder are its output.
        listed = sorted(path for path in ctx.folder.iterdir()
                        if path.is_file() and path.name not in before and not path.name.startswith("."))
    if not listed:
        ctx.log("The script produced no files")
    else:
        ctx.log(f"The script's output: {', '.join(path.name for path in listed)}")
    return [OutputFile(path=path, name=path.name) for path in listed]


# --- SSH command ---------------------------------------------------------------------------------------

def produce_ssh(ctx):
    """Run the command; its output streams to the log. With a file name set, stdout is also the output."""
    task = ctx.task
    shell = source_connector(ctx, "shell", "an SSH server")
    command = parameters.render(text_locations.load_text(task, "source", warn=ctx.warn, log=ctx.log), ctx.params)
    if not command.strip():
        raise pipeline.PipelineError("The task has no command to run", step="settings")
    timeout = scripts.step_timeout(task)
    capture = None
    if task.file_name:
        name = pipeline.output_name(parameters.render(task.file_name, ctx.params), task.name, "txt")
        capture = open(ctx.folder / name, "w", encoding="utf-8", newline="\n")
    lines = {"logged": 0, "skipped": 0, "stderr": []}

    def on_line(stream, line):
        if capture is not None and stream == "stdout":
            capture.write(line + "\n")
        if stream == "stderr" and line.strip():
            lines["stderr"] = (lines["stderr"] + [line.strip()[:500]])[-5:]
        if lines["logged"] < LOG_LINE_LIMIT:
            ctx.log(f"[{stream}] {line}", level="warning" if stream == "stderr" else "info")
            lines["logged"] += 1
        else:
            lines["skipped"] += 1

    environment = {"ETL_TASK_ID": task.pk, "ETL_TASK_NAME": task.name, "ETL_PROJECT_NAME": task.project.name,
                   "ETL_RUN_ID": ctx.run.pk}
    ctx.log(f"Running the command on {task.source_connection.name}")
    from runs.execution import on_cancel

    stop = threading.Event()
    try:
        with on_cancel(stop.set):
            status = shell.run(command, on_line, timeout=timeout, env=environment, stop=stop)
    finally:
        if capture is not None:
            capture.close()
        if lines["skipped"]:
            ctx.log(f"{lines['skipped']:,} more output lines were not written to the log")
    if status != 0:
        how = "was killed by a signal" if status == -1 else f"failed with exit status {status}"
        tail = " | ".join(lines["stderr"])
        raise pipeline.PipelineError(f"The command {how}" + (f": {tail}" if tail else ""), step="command")
    ctx.log("The command finished with exit status 0")
    return [OutputFile(path=capture_path, name=capture_path.name) for capture_path in
            ([ctx.folder / name] if capture is not None else [])]


PRODUCERS = {
    "query": produce_query,
    "files": produce_files,
    "script": produce_script,
    "ssh": produce_ssh,
}
