"""Source stage: produce the run's files from the task's source kind, and what the kinds share.

Each kind (query, files, script, SSH command) is a class in tasks/source_kinds/, holding its own producer;
this module hands a run to its task's kind, and keeps the helpers several kinds or pages use: the source
connection's check, the ODBC statement filter and the query preview.
"""
import re

from runs import text_locations
from runs.errors import PipelineError
from runs.formats import EXTENSIONS
from runs.sql_parameters import display_query

# Statements an ODBC source cannot take: batch separators of SQL Server tools, and switching databases
# (the connection already names its database).
GO_LINE = re.compile(r"^[ \t]*GO(?:[ \t]+\d+)?[ \t]*;?[ \t]*(?:--[^\n]*)?$", re.IGNORECASE)
USE_LINE = re.compile(r"^[ \t]*USE[ \t]+(?:\[[^\]\n]+\]|\"[^\"\n]+\"|`[^`\n]+`|[\w.$#@]+)[ \t]*;?[ \t]*(?:--[^\n]*)?$",
                      re.IGNORECASE)


def produce(ctx):
    """Return the list of OutputFile the task's source kind produced in ctx.folder."""
    return ctx.task.source.produce(ctx)


def after_delivery(ctx):
    """Whatever the source kind does once the files were delivered (the files kind deletes its sources)."""
    ctx.task.source.after_delivery(ctx)


def source_connector(ctx, capability, what=None):
    """The source connection's connector, refused unless its protocol has `capability` (a Capability)."""
    source = ctx.task.source_connection
    if source is None:
        raise PipelineError("The task has no source connection", step="settings")
    connector = source.connector()
    connector.read_only = ctx.dry_run  # a dry run's query must not write (Database.read_only)
    if capability not in connector.capabilities:
        raise PipelineError(f"{source.name} is a {source.kind_label} connection, not "
                            f"{what or 'a ' + capability}", step="settings")
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
    """True when the source's protocol removes `GO` and `USE` statements (ODBC, see Database)."""
    protocol = task.source_connection.protocol if task.source_connection is not None else None
    return bool(getattr(protocol, "removes_tool_statements", False))


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
    except PipelineError as exc:
        note = f"-- The query could not be loaded: {exc.message}"
        return note, note
    except Exception as exc:  # a connector failure must not break the task page
        note = f"-- The query could not be loaded: {getattr(exc, 'message', None) or exc}"
        return note, note
    text, _ = runnable_text(task, original)
    try:
        return original, display_query(text, params)
    except PipelineError as exc:
        return original, f"-- {exc.message}"


def output_extension(task):
    return EXTENSIONS.get(task.file_format, "csv")
