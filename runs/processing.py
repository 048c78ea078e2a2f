"""Processing stage: the task's optional Python script that reshapes the source's files.

The script gets every source file as an argument (`sys.argv[1]` is the first). When its last printed line
lists files, those replace the outputs; otherwise the source's files go on, as the script left them.
"""
import os

from runs import scripts, text_locations
from runs.context import OutputFile


def apply(ctx, outputs):
    if not ctx.task.processing_location:
        return outputs
    if not outputs:
        ctx.log("The source produced no files, so the processing script was not run")
        return outputs
    script = text_locations.load_script(ctx.task, "processing", ctx.folder / ".scripts" / "processing",
                                        warn=ctx.warn, log=ctx.log)
    before = {output.path: _stamp(output.path) for output in outputs}
    listed = scripts.run_script(ctx, script, [output.path for output in outputs], step="processing")
    if listed is None:
        kept = []
        for output in outputs:
            stamp = _stamp(output.path)
            if stamp is None:
                ctx.log(f"The processing script removed {output.name}: it is not delivered")
                continue
            if stamp != before[output.path]:
                output.rows = None  # rewritten in place: its row count is no longer known
            kept.append(output)
        return kept
    ctx.log(f"The processing script's output: {', '.join(path.name for path in listed) or 'no files'}")
    return files_as_outputs(listed)


def files_as_outputs(paths):
    return [OutputFile(path=path, name=path.name) for path in paths]


def _stamp(path):
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
