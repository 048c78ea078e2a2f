"""Conditions stage: all of a task's conditions must hold for its output to be delivered.

A condition query runs on any database connection (the task's source when none is chosen), with the
run's parameters bound as query parameters. A failing condition is not an error: nothing is delivered
and the run ends as a warning with the reason. A condition query that cannot run fails the run.
"""
import decimal
import operator

from connections.protocols import DATABASE, ConnectorError
from runs.errors import PipelineError
from runs.parameters import lookup, paramstyle_for, value_text
from runs.sql_parameters import bind_query

COMPARE = {"=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}


def failed_condition(ctx, outputs):
    """None when every condition holds, else the reason (the run then ends as a warning, nothing delivered)."""
    for number, condition in enumerate(ctx.task.conditions.select_related("connection"), start=1):
        holds, detail = check(ctx, condition, outputs)
        label = f"Condition {number} ({describe(condition)})"
        if not holds:
            return f"{label} does not hold: {detail}"
        ctx.log(f"{label} holds: {detail}")
    return None


def describe(condition):
    kind = condition.kind
    if kind == "query_rows":
        return "the condition query returns at least one row"
    if kind == "query_value":
        return f"the condition query's first value {condition.operator} {condition.value}"
    if kind == "min_rows":
        return f"the output has at least {condition.value} rows"
    if kind == "max_rows":
        return f"the output has at most {condition.value} rows"
    return condition.get_kind_display()


def check(ctx, condition, outputs):
    """(holds, what was found)."""
    if condition.kind in ("min_rows", "max_rows"):
        limit = _integer(condition.value, "row limit")
        rows = output_rows(ctx, outputs)
        holds = rows >= limit if condition.kind == "min_rows" else rows <= limit
        return holds, f"{rows:,} rows"
    if condition.kind == "query_rows":
        rows = _query_rows(ctx, condition, limit=1)
        return bool(rows), "it returned rows" if rows else "it returned no rows"
    if condition.kind == "query_value":
        rows = _query_rows(ctx, condition, limit=1)
        if not rows or not rows[0]:
            return False, "the query returned no rows"
        found = rows[0][0]
        if found is None:
            return False, "the first value is NULL"
        if condition.operator not in COMPARE:
            raise PipelineError(f"The condition's operator {condition.operator!r} is not one of "
                                         + " ".join(COMPARE), step="settings")
        expected = _expected_value(ctx, condition.value)
        left, right = _comparable(found, expected)
        return COMPARE[condition.operator](left, right), f"the first value is {value_text(found)}"
    raise PipelineError(f"Unknown condition kind {condition.kind!r}", step="settings")


def output_rows(ctx, outputs):
    """Data rows across the outputs; for files without a row count, their lines (minus a header)."""
    total = 0
    for output in outputs:
        if output.rows is not None:
            total += output.rows
            continue
        with open(output.path, "rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            handle.seek(0, 2)
            if handle.tell():
                handle.seek(-1, 2)
                lines += handle.read(1) != b"\n"
        total += max(0, lines - (1 if ctx.task.include_headers and lines else 0))
    return total


def _query_rows(ctx, condition, limit):
    connection = condition.connection or ctx.task.source_connection
    if connection is None:
        raise PipelineError("A condition query needs a database connection", step="settings")
    database = connection.connector()
    if DATABASE not in database.capabilities:
        raise PipelineError(f"{connection.name} is not a database: a condition query cannot run there",
                                     step="settings")
    if not (condition.query or "").strip():
        raise PipelineError("A condition has no query", step="settings")
    sql, values = bind_query(condition.query.strip(), ctx.params, style=paramstyle_for(database))
    try:
        with database.execute(sql, values) as result:
            if result.columns is None:
                raise PipelineError("The condition query returned no result set", step="query")
            for batch in result.batches(limit):
                return list(batch)[:limit]
            return []
    except ConnectorError as exc:
        raise ConnectorError(f"The condition query on {connection.name} failed: {exc.message}",
                             retryable=exc.retryable, step=exc.step or "query") from None


def _expected_value(ctx, text):
    text = (text or "").strip()
    if text.startswith("{") and text.endswith("}"):
        name = text[1:-1].strip()
        found, value = lookup(ctx.params, name)
        if not found:
            raise PipelineError(f"The condition compares to {{{name}}}, which is not a parameter",
                                         step="settings")
        return value
    return text


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return decimal.Decimal(str(value))
    try:
        return decimal.Decimal(str(value).strip())
    except (decimal.InvalidOperation, ValueError):
        return None


def _comparable(found, expected):
    """Numbers compare as numbers; anything else as text (ISO dates sort correctly as text)."""
    left, right = _number(found), _number(expected)
    if left is not None and right is not None:
        return left, right
    return value_text(found), value_text(expected)


def _integer(text, what):
    try:
        return int(str(text).strip())
    except ValueError:
        raise PipelineError(f"The condition's {what} {text!r} is not a whole number", step="settings") \
            from None
