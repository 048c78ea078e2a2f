"""An SSH command: runs on an SSH server, its output streamed to the run's log; with a file name set, its
standard output is also the run's file."""
import threading

from connections.protocols import SHELL
from etl_portal.cancellation import on_cancel
from runs import files, parameters, scripts, sources, text_locations
from runs.context import OutputFile
from runs.errors import PipelineError
from tasks.source_kinds import register
from tasks.source_kinds.base import SourceKind

LOG_LINE_LIMIT = 5000


@register
class SshKind(SourceKind):
    key = "ssh"
    not_in_dry_run = "an SSH command can change the server it runs on, so a dry run shows it without running it"
    label = "SSH command"
    position = 40
    fields = ("source_connection", "command")
    source_connection_capability = SHELL
    takes_text = True
    text_field = "command"
    text_label = "command"
    text_heading = "Command"
    # The server a command runs on is part of the code: moving a command to another server needs the right too.
    code_fields = ("text_location", "text_connection", "text_path", "text_entry", "command", "source_connection")

    def produce(self, ctx):
        """Run the command; its output streams to the log. With a file name set, stdout is also the output."""
        task = ctx.task
        shell = sources.source_connector(ctx, self.source_connection_capability, "an SSH server")
        command = parameters.render(text_locations.load_text(task, "source", warn=ctx.warn, log=ctx.log),
                                    ctx.params)
        if not command.strip():
            raise PipelineError("The task has no command to run", step="settings")
        timeout = scripts.step_timeout(task)
        capture = None
        if task.file_name:
            name = files.output_name(parameters.render(task.file_name, ctx.params), task.name, "txt")
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
            raise PipelineError(f"The command {how}" + (f": {tail}" if tail else ""), step="command")
        ctx.log("The command finished with exit status 0")
        return [OutputFile(path=capture_path, name=capture_path.name) for capture_path in
                ([ctx.folder / name] if capture is not None else [])]
