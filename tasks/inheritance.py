"""Settings shared across levels: organization, project, task. The nearest level that sets a value wins.

Each inheritable setting is one declaration in `SETTINGS` (`Inheritable(name, group)`, optionally a label,
the portal's default and a filter of the tasks it reaches). Its storage and validation follow from the Task
field of the same name: a task's own value is that field (NULL means "not set here: inherit"), a project's
and an organization's are keys of their `settings` JSON (a missing key means inherit; a connection is kept
by its id). The same field's form field validates a value at every level, in the pages and the API.

Resolution (`resolve_many`) reads the task's field, then its project's `settings`, then its organization's,
then the portal's default, and says where each value comes from (`Effective.level`, `.source`). It takes
a list of tasks and reads the connections they name with one query, so list pages resolve without N+1.

To add a setting (a webhook channel, a deadline): add the nullable Task field (with its migration) and one
`Inheritable(...)` line below; the task form, Task Details, the organization and project settings pages, the
API and export/import pick it up from here.
"""
from dataclasses import dataclass, field
from typing import Callable

from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Q

from connections.models import Connection
from connections.protocols import FILES, MAIL
from projects.models import Organization, Parameter, Project

ORGANIZATION, PROJECT, TASK, DEFAULT = "organization", "project", "task", "default"
LEVEL_LABELS = {ORGANIZATION: "organization", PROJECT: "project", TASK: "task", DEFAULT: "portal default"}


def _task_model():
    # tasks.models imports this module (a task resolves its settings here), so the model is found in Django's app
    # registry by its name, as a ForeignKey("tasks.Task") names it, rather than imported back in a cycle.
    return apps.get_model("tasks", "Task")


def _without_destinations(tasks):
    """The default destination reaches only tasks without destinations of their own."""
    return tasks.filter(destinations__isnull=True)


@dataclass(frozen=True)
class Inheritable:
    name: str  # the Task field, and the key in Organization.settings / Project.settings / the API
    group: str
    label: str = ""
    default: object = None  # the portal's value when no level sets one
    # Narrows a queryset of tasks to those the setting acts on (the affected count); None: all that inherit it.
    reaches: Callable | None = field(default=None, compare=False)

    @property
    def model_field(self):
        return _task_model()._meta.get_field(self.name)

    @property
    def is_connection(self):
        return self.model_field.is_relation

    @property
    def capability(self):
        return MAIL if self.name.endswith("smtp_connection") else FILES

    def verbose(self):
        return self.label or self.model_field.verbose_name.capitalize()

    def form_field(self, connections=None, inherit_label="Inherit"):
        """The form field for a value at any level: blank means "not set here"."""
        model_field = self.model_field
        if isinstance(model_field, _boolean_types()):
            form_field = forms.NullBooleanField(required=False, label=self.verbose(),
                                                widget=forms.NullBooleanSelect)
            form_field.widget.choices = [("unknown", inherit_label), ("true", "Yes"), ("false", "No")]
            return form_field
        if self.is_connection:
            queryset = (connections if connections is not None else Connection.objects.all())
            return forms.ModelChoiceField(queryset.with_capability(self.capability), required=False,
                                          empty_label=inherit_label, label=self.verbose())
        form_field = model_field.formfield(required=False)
        form_field.label = self.verbose()
        if getattr(form_field, "choices", None) is not None and not isinstance(form_field, forms.ModelChoiceField):
            form_field.choices = [("", inherit_label)] + [c for c in form_field.choices if c[0] not in ("", None)]
        if isinstance(form_field, forms.CharField):
            form_field.empty_value = None
            if isinstance(form_field.widget, forms.Textarea):
                form_field.widget.attrs["rows"] = 2
        return form_field

    def clean(self, raw, connections=None):
        """A value from a page or the API, checked as the task field checks it; None for "not set"."""
        if raw is None or raw == "":
            return None
        if isinstance(raw, bool) and isinstance(self.model_field, _boolean_types()):
            raw = "true" if raw else "false"
        if self.is_connection and hasattr(raw, "pk"):
            raw = raw.pk
        value = self.form_field(connections).clean(raw)
        if value is not None and not self.is_connection and not isinstance(value, bool):
            self.model_field.run_validators(value)
        return value

    def to_json(self, value):
        return getattr(value, "pk", value)

    def display(self, value):
        """A value as a page shows it: a choice's label, yes/no, a connection's name."""
        if value is None:
            return "portal's limit" if self.name == "timeout_seconds" else "none"
        if isinstance(value, bool):
            return "yes" if value else "no"
        choices = dict(self.model_field.choices or ())
        if value in choices:
            return str(choices[value])
        if value == "":
            return "(blank)"
        return str(value)

    def task_value(self, task):
        """The task's own value (None: inherits)."""
        return getattr(task, self.model_field.attname)


def _boolean_types():
    from django.db import models

    return (models.BooleanField,)


SETTINGS = [
    Inheritable("error_recipients", "Emails", "Failure email: to"),
    Inheritable("error_smtp_connection", "Emails", "Failure email: mail connection"),
    Inheritable("warning_recipients", "Emails", "Warning email: to"),
    Inheritable("warning_smtp_connection", "Emails", "Warning email: mail connection"),
    Inheritable("success_recipients", "Emails", "Success email: to"),
    Inheritable("success_smtp_connection", "Emails", "Success email: mail connection"),
    Inheritable("test_mode", "Emails", "Test mode: every email to the test address", default=False),
    Inheritable("test_email", "Emails", "Test address", default=""),
    Inheritable("retries", "Retries", "Automatic retries", default=0),
    Inheritable("retry_delay_seconds", "Retries", "Wait before a retry (seconds)", default=300),
    Inheritable("retry_backoff", "Retries", "Double the wait after every retry", default=False),
    Inheritable("retry_max_delay_seconds", "Retries", "Longest wait between retries (seconds)", default=3600),
    Inheritable("timeout_seconds", "Run", "Stop a run after (seconds)"),
    Inheritable("file_format", "Output", "File format", default="csv"),
    Inheritable("csv_delimiter", "Output", "Column separator", default=","),
    Inheritable("csv_quoting", "Output", "Quote values", default="minimal"),
    Inheritable("encoding", "Output", "Character encoding", default="utf-8"),
    Inheritable("line_terminator", "Output", "Line ending", default="lf"),
    Inheritable("parquet_compression", "Output", "Parquet compression", default="snappy"),
    Inheritable("retention_days", "Output", "Keep output files for (days)", default=90),
    Inheritable("destination_connection", "Delivery", "Default destination: connection",
                reaches=_without_destinations),
    Inheritable("destination_folder", "Delivery", "Default destination: folder", default="",
                reaches=_without_destinations),
]
BY_NAME = {setting.name: setting for setting in SETTINGS}
NAMES = tuple(BY_NAME)


def get(name):
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValidationError(f"{name!r} is not a setting that levels share; known: {', '.join(NAMES)}.") from None


@dataclass
class Effective:
    """One setting's value in effect for a task, and where it comes from."""

    setting: Inheritable
    value: object
    level: str  # ORGANIZATION, PROJECT, TASK or DEFAULT
    source: object = None  # the Organization, Project or Task that sets it (None for the portal default)
    inherited: object = None  # the value the task would have without its own (for "use inherited value")
    inherited_level: str = DEFAULT
    inherited_source: object = None

    @property
    def level_label(self):
        return LEVEL_LABELS[self.level]

    @property
    def display(self):
        return self.setting.display(self.value)

    @property
    def inherited_display(self):
        return self.setting.display(self.inherited)

    @property
    def inherited_level_label(self):
        return LEVEL_LABELS[self.inherited_level]

    @property
    def source_url(self):
        return settings_url(self.level, self.source)

    @property
    def inherited_url(self):
        return settings_url(self.inherited_level, self.inherited_source)

    def as_api(self):
        return {"value": self.setting.to_json(self.value), "level": self.level,
                "source": getattr(self.source, "pk", None), "source_name": str(self.source or "") or None,
                "task_value": self.setting.to_json(self.value) if self.level == TASK else None}


def inherited_for(project):
    """{name: Effective} a task of `project` that sets nothing itself would have (the form's "Blank: ...")."""
    if project is None:
        return {}
    return _task_model()(project=project).effective_settings()


def settings_url(level, source):
    from django.urls import reverse

    if level == ORGANIZATION:
        return reverse("organizations:settings", args=[source.pk])
    if level == PROJECT:
        return reverse("projects:settings", args=[source.pk])
    if level == TASK:
        return reverse("tasks:edit", args=[source.pk])
    return None


def clean_level_settings(data, organization, connections=None):
    """Check a project's or organization's settings (name -> value; None or "" drops it) and return them as
    stored (JSON). Raises ValidationError with one message per bad name."""
    if not isinstance(data, dict):
        raise ValidationError("settings must be an object of setting name to value.")
    if connections is None:
        connections = Connection.objects.filter(organization=organization)
    stored, errors = {}, {}
    for name, raw in data.items():
        if name not in BY_NAME:
            errors[name] = [f"Not a setting that levels share; known: {', '.join(NAMES)}."]
            continue
        try:
            value = BY_NAME[name].clean(raw, connections)
        except ValidationError as exc:
            errors[name] = exc.messages
            continue
        if value is not None:
            stored[name] = BY_NAME[name].to_json(value)
    if errors:
        raise ValidationError(errors)
    return stored


def changed_names(holder, stored):
    """The settings whose stored value differs between `holder.settings` and `stored`."""
    old = holder.settings or {}
    return [name for name in NAMES if old.get(name) != stored.get(name)]


def save_level_settings(holder, stored):
    """Store an organization's or project's checked settings (clean_level_settings); its history records the
    change at this level. Returns the names changed. Tasks that inherit them use them from their next run."""
    changed = changed_names(holder, stored)
    if changed:
        holder.settings = stored
        holder.save()
    return changed


def level_of(holder):
    return ORGANIZATION if isinstance(holder, Organization) else PROJECT


def inherited_by_level(holder):
    """{name: Effective} a value not set on `holder` would take: for a project, its organization's value or the
    portal default; for an organization, the portal default."""
    if isinstance(holder, Project):
        bare = Project(organization=holder.organization, settings={})
        return inherited_for(bare)
    return {setting.name: Effective(setting, setting.default, DEFAULT) for setting in SETTINGS}


def copy_project_settings(template, project):
    """A project template: `project` takes `template`'s shared settings and parameters (not its tasks).
    Parameters `project` already has are kept; both must be of one organization (settings name connections)."""
    if template.organization_id != project.organization_id:
        raise ValidationError("A project copies settings only from a project of its own organization.")
    save_level_settings(project, {**(template.settings or {}), **(project.settings or {})})
    have = set(project.parameters.values_list("key", flat=True))
    for parameter in template.parameters.exclude(key__in=have):
        Parameter.objects.create(project=project, key=parameter.key, value=parameter.value,
                                 sensitive=parameter.sensitive)


def levels_using(connection):
    """The organizations and projects whose shared settings name `connection` (a JSON value, which no foreign
    key protects): a connection they use is not deleted, as one a task uses is not."""
    uses = Q(pk__in=[])
    for setting in SETTINGS:
        if setting.is_connection:
            uses |= Q(**{f"settings__{setting.name}": connection.pk})
    return (list(Organization.objects.filter(uses).filter(pk=connection.organization_id))
            + list(Project.objects.filter(uses).filter(organization=connection.organization_id).order_by("name")))


def resolve_many(tasks):
    """Resolve every setting of every task; sets `task._effective` ({name: Effective}) and returns the tasks.

    The tasks should come with `project__organization` selected; the connections named at any level are
    read with one query for all of them."""
    wanted = set()
    for task in tasks:
        for setting in SETTINGS:
            if setting.is_connection:
                for holder in (task.project.settings or {}, task.project.organization.settings or {}):
                    if holder.get(setting.name):
                        wanted.add(holder[setting.name])
                if setting.task_value(task):
                    wanted.add(setting.task_value(task))
    connections = Connection.objects.in_bulk(wanted) if wanted else {}
    for task in tasks:
        task._effective = _resolve(task, connections)
    return tasks


def _resolve(task, connections):
    project, organization = task.project, task.project.organization
    effective = {}
    for setting in SETTINGS:
        chain = []
        own = setting.task_value(task)
        if own is not None:
            chain.append((TASK, task, own))
        for level, holder in ((PROJECT, project), (ORGANIZATION, organization)):
            stored = (holder.settings or {}).get(setting.name)
            if stored is not None:
                chain.append((level, holder, stored))
        chain.append((DEFAULT, None, setting.default))
        values = [(level, source, connections.get(raw) if setting.is_connection and raw is not None else raw)
                  for level, source, raw in chain]
        level, source, value = values[0]
        above = values[1] if level == TASK else values[0]
        effective[setting.name] = Effective(setting, value, level, source, inherited=above[2],
                                            inherited_level=above[0], inherited_source=above[1])
    return effective


def affected_tasks(level, holder, names):
    """The tasks a value set at `level` on `holder` (an Organization or a Project) reaches for each setting:
    those under it that do not set it themselves nor, for an organization, at their project.
    Returns {name: (task count, project count)} with two queries per setting."""
    counts = {}
    for name in names:
        setting = BY_NAME[name]
        tasks = _task_model().objects.filter(**{f"{setting.name}__isnull": True})
        if level == ORGANIZATION:
            tasks = tasks.filter(project__organization=holder).exclude(
                project__settings__has_key=setting.name)
        else:
            tasks = tasks.filter(project=holder)
        if setting.reaches:
            tasks = setting.reaches(tasks)
        tasks = tasks.distinct()
        counts[name] = (tasks.count(), tasks.values("project").distinct().count())
    return counts


def grouped(effective):
    """[(group, [Effective, ...]), ...] in the registry's order, for the pages."""
    groups = {}
    for setting in SETTINGS:
        groups.setdefault(setting.group, []).append(effective[setting.name])
    return list(groups.items())
