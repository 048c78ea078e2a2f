"""A Python script: runs in the sandbox in the run's folder; the files it writes (or lists) are the output."""
from runs import scripts, text_locations
from runs.context import OutputFile
from tasks.source_kinds import register
from tasks.source_kinds.base import SourceKind


@register
class ScriptKind(SourceKind):
    key = "script"
    label = "Python script"
    position = 30
    # An optional source connection: the script gets its address and secrets as ETL_SOURCE_* variables.
    fields = ("source_connection", "script")
    takes_text = True
    text_field = "script"
    text_label = "script"
    text_heading = "Script"
    code_fields = ("text_location", "text_connection", "text_path", "text_entry", "script")

    def produce(self, ctx):
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
