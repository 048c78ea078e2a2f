"""A database query: rows of a query on a database connection written to one file."""
from connections.protocols import DATABASE
from etl_portal.cancellation import on_cancel
from runs import files, parameters, preview, sources, text_locations
from runs.context import OutputFile
from runs.extract import NoResultSet, extract_to_csv, render_query
from runs.formats import CsvOptions
from runs.masking import mask
from runs.sql_parameters import bind_query, display_query
from tasks.source_kinds import register
from tasks.source_kinds.base import SourceKind


@register
class QueryKind(SourceKind):
    key = "query"
    label = "Database query"
    position = 10
    fields = ("source_connection", "query", "include_headers")
    source_connection_capability = DATABASE
    takes_text = True
    text_field = "query"
    text_label = "query"

    def produce(self, ctx):
        task = ctx.task
        database = sources.source_connector(ctx, self.source_connection_capability, "a database")
        original = text_locations.load_text(task, "source", warn=ctx.warn, log=ctx.log)
        text, removed = sources.runnable_text(task, original)
        if removed:
            ctx.log(f"Removed what an ODBC source cannot run: {', '.join(removed)}")
        text = render_query(text)
        sql, values = bind_query(text, ctx.params, style=parameters.paramstyle_for(database))
        shown = mask(display_query(text, ctx.params), values=ctx.secrets)
        ctx.run.record(query_text=shown)
        name = files.output_name(parameters.render(task.file_name, ctx.params), task.name,
                                    sources.output_extension(task))
        ctx.log(f"Running query on {task.source_connection.name}")
        try:
            # Cancelling the run (or its timeout) cancels the statement on the server, not just the wait.

            with on_cancel(database.cancel):
                extract = extract_to_csv(
                    database, sql, ctx.folder / name, CsvOptions.for_task(task),
                    progress=lambda rows: ctx.log(f"{rows:,} rows written so far"),
                    file_format=task.file_format, params=values,
                )
        except NoResultSet as outcome:
            ctx.log(f"The statement ran and returned no result set ({outcome.rowcount:,} rows affected), "
                    "so there is no file to deliver")
            return []
        types = extract.types or [None] * len(extract.columns)
        ctx.run.record(rows=extract.rows, columns=[[name, kind] for name, kind in zip(extract.columns, types)])
        for warning in extract.warnings:  # values written in a documented fallback (a cut cell), counted
            ctx.warn(warning)
        ctx.log(f"Query finished: {extract.rows:,} rows, {len(extract.columns)} columns")
        return [OutputFile(path=extract.path, name=name, rows=extract.rows)]

    def preview(self, task, params, *, secrets, attempt):
        query, shown = preview.query_preview(task, params, secrets)
        return {"query": query, "query_preview": shown}

    def summary(self, task):
        return super().summary(task) + [f"Headers {'included' if task.include_headers else 'not included'}"]
