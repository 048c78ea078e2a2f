"""Files from a server: files by name or wildcard from SFTP, FTP, SMB or a local folder, passed on as they are
or re-written with the output settings, and deleted from the server after delivery when asked."""
import posixpath

from django.utils.html import format_html

from connections.protocols import FILES, ConnectorError
from runs import files, parameters, sources
from runs.context import OutputFile
from runs.errors import PipelineError
from runs.formats import CsvOptions
from runs.rewrite import RewriteError, rewrite_file
from tasks.source_kinds import register
from tasks.source_kinds.base import SourceKind


def file_patterns(task, params):
    """Names or shell wildcards (several separated by `;`), with parameters and date codes put in."""
    patterns = [parameters.render(part.strip(), params) for part in (task.file_pattern or "").split(";")]
    return [pattern for pattern in patterns if pattern] or ["*"]


@register
class FilesKind(SourceKind):
    key = "files"
    label = "Files from a server"
    position = 20
    fields = ("source_connection", "file_folder", "file_pattern", "on_no_files", "file_handling",
              "delete_source_files")
    source_connection_capability = FILES

    def clean(self, form, cleaned):
        super().clean(form, cleaned)
        self.require(form, cleaned, "file_pattern", message="Give a file name or a wildcard such as *.csv.")

    def produce(self, ctx):
        task = ctx.task
        store = sources.source_connector(ctx, self.source_connection_capability,
                                         "a file server (SFTP, FTP, SMB or a local folder)")
        folder = store.join(parameters.render(task.file_folder, ctx.params))
        patterns = file_patterns(task, ctx.params)
        where = f"{folder or '/'} on {task.source_connection.name}"
        with store.session() as session:
            names = []
            for pattern in patterns:
                if "/" in pattern:
                    raise PipelineError(f"The file pattern {pattern!r} may not contain a folder: put "
                                                 "the folder in the folder field", step="settings")
                names += [name for name in session.list(folder, pattern) if name not in names]
            if not names:
                return no_files(ctx, f"No file matching {' or '.join(patterns)} in {where}")
            ctx.log(f"Found {len(names)} file{'s' if len(names) != 1 else ''} matching {' or '.join(patterns)} "
                    f"in {where}")
            downloaded = []
            for name in names:
                session.get(posixpath.join(folder, name), str(ctx.folder / name))
                ctx.log(f"Downloaded {name} ({(ctx.folder / name).stat().st_size:,} bytes)")
                downloaded.append(name)
        ctx.fetched_source_files = [(folder, name) for name in downloaded]  # deleted after delivery, if asked
        outputs = [OutputFile(path=ctx.folder / name, name=name) for name in downloaded]
        if task.file_handling == task.FileHandling.REWRITE:
            outputs = [rewrite_output(ctx, output) for output in outputs]
        elif task.file_name and len(outputs) == 1:
            outputs[0].name = files.output_name(parameters.render(task.file_name, ctx.params), task.name)
        return outputs

    def after_delivery(self, ctx):
        """Delete the source files once their copies were delivered, when the task asks for it."""
        fetched = ctx.fetched_source_files
        if not fetched or not ctx.task.delete_source_files:
            return
        store = ctx.task.source_connection.connector()
        try:
            with store.session() as session:
                for folder, name in fetched:
                    session.delete(posixpath.join(folder, name))
        except ConnectorError as exc:
            ctx.warn(f"The files were delivered, but the source files could not be deleted: {exc.message}")
            return
        ctx.log(f"Deleted {len(fetched)} source file{'s' if len(fetched) != 1 else ''} from "
                f"{ctx.task.source_connection.name}")

    def preview(self, task, params, *, secrets, attempt):
        if not task.file_pattern:
            return {}
        return {"source_items": [("Files matched",
                                  attempt("File pattern", lambda: parameters.render(task.file_pattern, params)))]}

    def summary(self, task):
        deleted = " · source files deleted after delivery" if task.delete_source_files else ""
        return [format_html("{}/{} · when none match: {} · {}{}", task.file_folder or "/", task.file_pattern,
                            task.get_on_no_files_display().lower(), task.get_file_handling_display().lower(),
                            deleted)]


def no_files(ctx, message):
    choice = ctx.task.on_no_files
    if choice == ctx.task.NoFiles.WARN:
        ctx.warn(message)
    elif choice == ctx.task.NoFiles.SUCCEED:
        ctx.log(message)
    else:
        raise PipelineError(message, step="folder")
    return []


def rewrite_output(ctx, output):
    task = ctx.task
    extension = sources.output_extension(task)
    name = output.name
    if task.file_name and len(ctx.fetched_source_files) == 1:
        name = files.output_name(parameters.render(task.file_name, ctx.params), task.name, extension)
    elif task.file_format != task.FileFormat.CSV:
        name = f"{name.rsplit('.', 1)[0] if '.' in name else name}.{extension}"
    target = ctx.folder / ".rewritten" / name
    target.parent.mkdir(exist_ok=True)
    try:
        rows, encoding, delimiter = rewrite_file(output.path, target, CsvOptions.for_task(task), task.file_format)
    except RewriteError as exc:
        raise PipelineError(str(exc), step="settings") from None
    final = ctx.folder / name
    output.path.unlink()
    target.replace(final)
    shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(delimiter, delimiter)
    ctx.log(f"Re-wrote {output.name} ({encoding}, {shown}-delimited) as {name}: {rows:,} rows")
    return OutputFile(path=final, name=name, rows=rows)
