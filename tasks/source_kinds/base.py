"""The base class of a task source kind: everything the portal knows about one kind of source, in one place.

The form (its layout, choices and checks), the code permission (`Task.code_of`), the run's source stage
(`runs.sources.produce`), the parameter preview and the task page read a kind only through this class, so a
new kind is one module in this package (see the package docstring and README, "How to add a task source
kind"). Nothing here imports the pipeline (`runs`) at module level: the models layer imports this module.
"""
from django.utils.html import format_html

from runs.errors import PipelineError

# The Task fields of a query, script or command that is typed in or loaded from a connection. A kind with
# `takes_text` uses them besides its own `fields`.
TEXT_FIELDS = ("text_location", "text_connection", "text_path", "text_entry", "cache_remote_text")
REMOTE = "remote"  # Task.TextLocation.REMOTE, not imported: tasks.models imports this package


class SourceKind:
    """One kind of task source. Subclass it, set the attributes, implement `produce`, and decorate the class
    with `tasks.source_kinds.register`; the registry keeps one instance, shared by every task of that kind.
    """

    #: Why a dry run (runs/dry_run.py) does not produce this kind's files, or "" when it may: a dry run reads
    #: (read-only where the engine allows) but must change nothing anywhere.
    not_in_dry_run = ""

    #: The value stored in `Task.source_kind` (at most 10 characters). Never change it once tasks use it:
    #: stored tasks name their kind by it.
    key = ""

    #: What the kind is called in the form's choice list, on the task page and in messages.
    label = ""

    #: Order in the form's choice list (lower first); the built-in kinds use 10 to 40.
    position = 100

    #: The Task fields this kind uses, in the order the form shows them (besides `source_kind` itself, and
    #: besides TEXT_FIELDS when `takes_text`). The form shows a field only for the kinds that list it, and
    #: empties the text and connection fields the chosen kind does not use when the task is saved, so a
    #: hidden field never keeps a value that looks like it is in effect.
    fields = ()

    #: The capability (connections.protocols.Capability) the task's source connection must have: DATABASE,
    #: FILES or SHELL. None: the kind needs no source connection (it may still list `source_connection` in
    #: `fields` to offer an optional one).
    source_connection_capability = None

    #: Whether the kind runs a text (query, script, command) that is typed in or loaded from a connection
    #: (runs/text_locations.py). When true, `text_field` holds the typed-in text and `text_label` names it.
    takes_text = False

    #: The Task field holding the typed-in text, when `takes_text` (e.g. "query", "script", "command").
    text_field = ""

    #: What the text is called in messages ("query", "script", "command").
    text_label = ""

    #: When set, the task page shows the typed-in text under this heading (e.g. "Script").
    text_heading = ""

    #: The Task fields that are code run on the portal's server or a shell (the script or command, where it
    #: is loaded from, the SSH server it runs on). A kind with any is code: writing or changing them needs the
    #: "may write code" permission (projects.access, through `Task.code_of`).
    code_fields = ()

    @property
    def is_code(self):
        """Whether tasks of this kind hold code (see `code_fields`)."""
        return bool(self.code_fields)

    def used_fields(self):
        """Every Task field this kind uses: its `fields`, and TEXT_FIELDS when it `takes_text`."""
        return tuple(self.fields) + (TEXT_FIELDS if self.takes_text else ())

    def text_is_remote(self, values):
        """Whether the text is loaded from a connection; `values` is the form's cleaned data or a task."""
        get = values.get if isinstance(values, dict) else (lambda name: getattr(values, name, None))
        return self.takes_text and get("text_location") == REMOTE

    # --- the form ----------------------------------------------------------------------------------------

    def clean(self, form, cleaned):
        """Check the task form's values for this kind, adding errors to `form` (`form.add_error`). The base
        checks the source connection's capability, and the text: typed in, or a connection and path to load
        it from. Override to check more, calling this first."""
        if self.source_connection_capability:
            self.require_connection(form, cleaned, "source_connection", self.source_connection_capability)
        if self.text_is_remote(cleaned):
            self.require(form, cleaned, "text_connection", "text_path")
        elif self.takes_text:
            self.require(form, cleaned, self.text_field,
                         message=f"Type the {self.text_label}, or load it from a connection.")

    @staticmethod
    def require(form, cleaned, *names, message="This field is required for this kind of task."):
        """Add `message` to each of the named fields that is empty."""
        for name in names:
            if not cleaned.get(name):
                form.add_error(name, message)

    @staticmethod
    def require_connection(form, cleaned, name, capability):
        """Add an error unless the named field holds a connection whose protocol has this capability."""
        connection = cleaned.get(name)
        if connection is None:
            return form.add_error(name, "Choose a connection.")
        if not connection.has(capability):
            form.add_error(name, f"{connection.name} is a {connection.kind_label} connection; this needs "
                                 f"{capability}.")

    # --- the run -----------------------------------------------------------------------------------------

    def produce(self, ctx):
        """Produce the run's files in `ctx.folder` (a runs.context.RunContext: `task`, `run`, `params`,
        `secrets`, `log`, `warn`) and return them as a list of runs.context.OutputFile (an empty list: nothing
        to deliver). Raise runs.PipelineError with a message for the run's log when it fails."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to produce its files")

    def after_delivery(self, ctx):
        """Called once the run's files were delivered (e.g. to delete the source files); nothing by default."""

    # --- the task page -----------------------------------------------------------------------------------

    def preview(self, task, params, *, secrets, attempt):
        """What the parameter preview shows about the source, with `params` resolved for the chosen date.

        Return a dict merged into runs.preview.preview's result: "source_items", a list of (label, text)
        lines (e.g. the file pattern resolved); "query" and "query_preview" for a query. `attempt(label,
        make)` calls `make()` and returns its result masked, or records the error under `label` and returns
        ""; mask with `secrets` whatever is not made through it.
        """
        return {}

    def summary(self, task):
        """Lines shown on the task page after the kind's label and source connection (text is escaped; use
        django.utils.html.format_html for markup). The base shows where a remote text is loaded from."""
        if not self.text_is_remote(task):
            return []
        connection = task.text_connection.name if task.text_connection else ""
        entry = format_html(" (runs {})", task.text_entry) if task.text_entry else ""
        cached = ", cached copy kept" if task.cache_remote_text else ""
        return [format_html('<span class="text-muted">loaded from {}: {}{}{}</span>', connection, task.text_path,
                            entry, cached)]

    def detail_text(self, task):
        """(heading, text) the task page shows below the settings, or None: the typed-in text under
        `text_heading`, when set and not empty."""
        text = getattr(task, self.text_field, "") if self.text_field else ""
        if self.text_heading and text:
            return self.text_heading, text
        return None


class UnknownKind(SourceKind):
    """Stands for a stored kind no module registers (its module was removed): the task page still shows,
    and a run fails with a clear message instead of an error page."""

    def __init__(self, key):
        self.key = self.label = key

    def produce(self, ctx):

        raise PipelineError(f"The source kind {self.key!r} is not available", step="settings")
