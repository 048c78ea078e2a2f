"""Source stage: produce the run's files from the task's source (query, files, script, SSH command)."""
from runs import pipeline
from runs.context import OutputFile
from runs.formats import CsvOptions


def produce(ctx):
    """Return the list of OutputFile the source produced in ctx.folder."""
    producer = PRODUCERS.get(ctx.task.source_kind)
    if producer is None:
        raise pipeline.PipelineError(f"The source kind {ctx.task.get_source_kind_display()!r} is not available",
                                     step="settings")
    return producer(ctx)


def source_connector(ctx, category):
    source = ctx.task.source_connection
    if source is None:
        raise pipeline.PipelineError("The task has no source connection", step="settings")
    connector = source.connector()
    if connector.category != category:
        raise pipeline.PipelineError(f"{source.name} is a {source.kind_label} connection, not a {category}",
                                     step="settings")
    return connector


def query_text(ctx):
    """The query exactly as it will run."""
    from runs import parameters

    return pipeline.render_query(parameters.render(ctx.task.query, ctx.params))


def produce_query(ctx):
    task = ctx.task
    database = source_connector(ctx, "database")
    sql = query_text(ctx)
    type(ctx.run).objects.filter(pk=ctx.run.pk).update(query_text=sql)
    from runs import parameters

    name = pipeline.output_name(parameters.render(task.file_name, ctx.params), task.name)
    ctx.log(f"Running query on {task.source_connection.name}")
    extract = pipeline.extract_to_csv(
        database, sql, ctx.folder / name, CsvOptions.for_task(task),
        progress=lambda rows: ctx.log(f"{rows:,} rows written so far"),
    )
    type(ctx.run).objects.filter(pk=ctx.run.pk).update(rows=extract.rows)
    ctx.log(f"Query finished: {extract.rows:,} rows, {len(extract.columns)} columns")
    return [OutputFile(path=extract.path, name=name, rows=extract.rows)]


PRODUCERS = {
    "query": produce_query,
}

