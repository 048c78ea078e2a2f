"""The New/Edit Task form: sections that show only the fields of the chosen source kind, and inline lists."""
from crispy_forms.bootstrap import Tab, TabHolder
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Fieldset, Layout
from django import forms
from django.forms import inlineformset_factory
from django.utils.html import format_html

from connections.models import Connection
from etl_portal.widgets import SearchSelect, SearchSelectMultiple
from connections.protocols import DATABASE, FILES, KEY, MAIL, TEXT, registry
from projects import access
from projects.models import Organization, Parameter, Project
from tasks import form_words, inheritance, source_kinds
from tasks.models import Condition, Dependency, Destination, Notification, Task

CODE = {"class": "code-editor font-monospace", "rows": 12, "spellcheck": "false"}


def offer_only(field, connections, capability, what):
    """Limit a connection picker to `connections` having `capability`; any other posted is refused there."""
    field.queryset = connections.with_capability(capability)
    field.error_messages["invalid_choice"] = (
        f"Choose one of the listed connections: {what} needs {capability.noun} "
        f"({registry.labels_with(capability)}).")


def shown_for(*kinds, field_names, switch="source_kind"):
    """Fields wrapped so connection-form style JS shows them only for the given values of `switch`."""
    return Div(*field_names, css_class="kind-field", data_switch=switch, data_kinds=" ".join(kinds))


class ConnectionSelect(forms.Select):
    """A connection picker whose options say what each connection can do (`data-capabilities`), so the task
    form's script (static/js/source-connection.js) lists only those that fit the chosen kind of source."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        connection = getattr(value, "instance", None)
        if connection is not None:
            protocol = connection.protocol
            option["attrs"]["data-capabilities"] = " ".join(sorted(protocol.capabilities)) if protocol else ""
        return option


class SourceKindSelect(forms.Select):
    """The kind of source, each option naming the capability its source connection needs (`data-needs`)."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        kind = source_kinds.get(value)
        needs = getattr(kind, "source_connection_capability", None) if kind else None
        if needs:
            option["attrs"]["data-needs"] = str(needs)
        return option


class Sections(TabHolder):
    """The form's tabs (Bootstrap's, from the vendored bundle): the first tab holding an error opens, errors of
    the inline lists (formsets) included, which the form itself does not know about; the view names those
    tabs in `form.tabs_with_errors`."""

    def open_target_group_for_form(self, form):
        names = list(form.errors) + list(getattr(form, "tabs_with_errors", ()))
        for tab in self.fields:
            if any(name in tab or name == tab.css_id for name in names):
                tab.active = True
                return tab
        return super().open_target_group_for_form(form)


def source_layout():
    """The source section's fields, each shown only for the kinds (tasks/source_kinds/) that use it: the
    text's location (and, inside it, the connection it is loaded from) for kinds that take a text, then the
    kinds' own fields in the order they list them, neighbours used by the same kinds in one box."""
    kinds = source_kinds.kinds()
    text_kinds = [kind.key for kind in kinds if kind.takes_text]
    remote = Div("text_connection", "text_path", "text_entry", "cache_remote_text", css_class="kind-field",
                 data_switch="text_location", data_kinds="remote")
    boxes, placed = [], set(source_kinds.TEXT_FIELDS)
    for kind in kinds:
        for name in kind.fields:
            if name in placed:
                continue
            placed.add(name)
            users = [other.key for other in kinds if name in other.fields]
            if boxes and boxes[-1][0] == users:
                boxes[-1][1].append(name)
            else:
                boxes.append((users, [name]))
    shown = [shown_for(*users, field_names=names) for users, names in boxes]
    if text_kinds:
        # After the source connection, as before: the text's location comes before the text itself.
        at = 1 if boxes and "source_connection" in boxes[0][1] else 0
        shown.insert(at, shown_for(*text_kinds, field_names=["text_location", remote]))
    return shown


class OmittedKeepsDefault:
    """The `keep_default` fields are optional: a post that does not carry one (a script or an older copy of the
    page) keeps the model's default rather than failing as "required"."""

    keep_default = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.keep_default:
            self.fields[name].required = False

    def clean(self):
        cleaned = super().clean()
        for name in self.keep_default:
            if cleaned.get(name) in (None, ""):
                cleaned[name] = self._meta.model._meta.get_field(name).get_default()
        return cleaned


class TaskForm(OmittedKeepsDefault, forms.ModelForm):
    keep_default = ("drift_check",)

    class Meta:
        model = Task
        exclude = ("created_at", "updated_at")
        widgets = {
            "source_kind": SourceKindSelect,
            "source_connection": ConnectionSelect,
            "query": forms.Textarea(attrs={**CODE, "data-mode": "text/x-sql"}),
            "script": forms.Textarea(attrs={**CODE, "data-mode": "text/x-python"}),
            "processing_script": forms.Textarea(attrs={**CODE, "data-mode": "text/x-python"}),
            "command": forms.Textarea(attrs={**CODE, "rows": 5, "data-mode": "text/x-sh"}),
            "description": forms.Textarea(attrs={"rows": 2}),
            # Search pickers: lists that grow with the portal (etl_portal/widgets.py).
            "project": SearchSelect("tasks:pick-project", placeholder="Find a project: type part of its name"),
            "publish_to_users": SearchSelectMultiple("tasks:pick-person", placeholder="Find a person by name",
                                                     attrs={"size": 4}),
            "publish_to_groups": forms.SelectMultiple(attrs={"size": 4}),
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = Project.objects.editable_by(user)
        if not self.instance.pk and not self.initial.get("project"):
            only = list(self.fields["project"].queryset[:2])
            if len(only) == 1:
                self.initial["project"] = only[0].pk
        connections = Connection.objects.visible_to(user).select_related("organization")
        # Any kind may be a source (a script gets its settings); clean() checks it against the source kind.
        self.fields["source_connection"].queryset = connections
        offer_only(self.fields["text_connection"], connections, TEXT, "loading the text")
        offer_only(self.fields["processing_connection"], connections, TEXT, "loading the processing script")
        offer_only(self.fields["gpg_key"], connections, KEY, "encrypting")
        # The file hub publishes only to people and groups of the organizations the user works in.
        organizations = Organization.objects.where_role(user)
        self.fields["publish_to_users"].queryset = access.users_of(organizations)
        self.fields["publish_to_groups"].queryset = access.groups_of(organizations)
        self.fields["processing_location"].choices = [("", "No processing script")] + list(
            Task.TextLocation.choices)
        self._analyst_words()
        self._shared_settings(connections)
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.layout = Layout(
            Fieldset("General", Div(Div("project", css_class="col-md-4"), Div("name", css_class="col-md-5"),
                                    Div("enabled", css_class="col-md-3 pt-md-4"), css_class="row"),
                     "description", "run_rank"),
            Sections(
                Tab("Source", "source_kind", *source_layout(),
                    HTML("{% include 'tasks/_formset.html' with formset=formsets.parameters title='Task parameters' %}"),
                    HTML("{% include 'tasks/_try_query.html' %}"), css_id="section-source"),
                Tab("Processing", "processing_location",
                    Div("processing_script", css_class="kind-field", data_switch="processing_location",
                        data_kinds="inline"),
                    Div("processing_connection", "processing_path", "processing_entry", css_class="kind-field",
                        data_switch="processing_location", data_kinds="remote"),
                    css_id="section-processing"),
                Tab("Output", "file_name", HTML("{% include 'tasks/_try_name.html' %}"), "file_format",
                    # A blank format is inherited: its options stay visible, as they may be inherited too.
                    Div("csv_delimiter", "csv_quoting", css_class="kind-field", data_switch="file_format",
                        data_kinds="csv "),
                    shown_for("csv", "fixed", "", field_names=["line_terminator", "encoding"], switch="file_format"),
                    shown_for("fixed", field_names=["fixed_width_layout"], switch="file_format"),
                    shown_for("parquet", "", field_names=["parquet_compression"], switch="file_format"),
                    "cut_long_values", "append_to_lines", "gpg_key", "zip_output",
                    Div("zip_name", css_class="kind-field", data_switch="zip_output", data_kinds="on"),
                    "write_md5_file", "retention_days", css_id="section-output"),
                Tab("Delivery", "drift_check",
                    HTML("{% include 'tasks/_formset.html' with formset=formsets.destinations title='Destinations' %}"),
                    Fieldset("Default destination (when the list above is empty)", "destination_connection",
                             "destination_folder"),
                    Fieldset("File hub", "publish_to_users", "publish_to_groups"), css_id="section-delivery"),
                Tab("Notifications", "test_mode",
                    Div("test_email", css_class="kind-field", data_switch="test_mode", data_kinds="true unknown"),
                    Fieldset("Mailboxes of each outcome", "error_recipients", "error_smtp_connection",
                             "warning_recipients", "warning_smtp_connection", "success_recipients",
                             "success_smtp_connection"),
                    HTML("{% include 'tasks/_formset.html' with formset=formsets.notifications title='Emails' %}"),
                    css_id="section-notifications"),
                Tab("Schedule and retries", "priority", "max_instances", "timeout_seconds", "dependency_mode",
                    HTML("{% include 'tasks/_formset.html' with formset=formsets.dependencies title='Runs after' %}"),
                    HTML("{% include 'tasks/_formset.html' with formset=formsets.conditions title='Run only if' %}"),
                    Fieldset("Retries", "retries", "retry_delay_seconds", "retry_backoff", "retry_max_delay_seconds"),
                    css_id="section-schedule"),
            ),
        )

    def project_for_words(self):
        """The project whose parameters the help lists: the task's, the one posted or preset, else None."""
        chosen = self.data.get("project") if self.is_bound else self.initial.get("project")
        if self.instance.pk and not chosen:
            return self.instance.project
        try:
            return self.fields["project"].queryset.filter(pk=int(chosen)).first() if chosen else None
        except (TypeError, ValueError):
            return None

    def _analyst_words(self):
        for name, field in self.fields.items():
            field.label = form_words.LABELS.get(name, field.label)
            field.help_text = form_words.HELP.get(name, field.help_text)
        project = self.project_for_words()
        keys = list(project.parameters.values_list("key", flat=True)) if project else []
        self.parameter_help = form_words.parameter_help(keys)
        for name in form_words.PARAMETER_FIELDS:
            if name in self.fields:
                self.fields[name].help_text = self.parameter_help

    def _shared_settings(self, connections):
        """Each shared setting (tasks/inheritance.py) may be left blank to inherit: its field says what it
        inherits and from where (a badge linking to that level), with a button that blanks it."""
        self.inherited = inheritance.inherited_for(self.project_for_words())
        for setting in inheritance.SETTINGS:
            item = self.inherited.get(setting.name)
            inherit_label = f"Inherit: {item.display} ({item.level_label})" if item else "Inherit"
            field = setting.form_field(connections.filter(organization__in=Organization.objects.where_role(
                self.user).values("pk")), inherit_label=inherit_label)
            field.label = form_words.LABELS.get(setting.name, setting.verbose())
            own_help = form_words.HELP.get(setting.name, "")
            if item:
                url = item.source_url
                badge = (format_html('<a href="{}" class="badge level-badge level-{}">{}{}</a>', url, item.level,
                                     item.level_label, f": {item.source}" if item.source else "")
                         if url else format_html('<span class="badge level-badge level-default">{}</span>',
                                                 item.level_label))
                inherits = format_html("Blank inherits <strong>{}</strong> {}", item.display, badge)
            else:
                inherits = "Blank inherits the project's, the organization's or the portal's value."
            field.help_text = format_html(
                '{} {} <button type="button" class="btn btn-link btn-sm p-0 align-baseline use-inherited" '
                'data-inherit-field="{}">use inherited value</button>', own_help, inherits, setting.name)
            self.fields[setting.name] = field

    def _require(self, cleaned, *names, message="This field is required for this kind of task."):
        for name in names:
            if not cleaned.get(name):
                self.add_error(name, message)

    def _clean_source(self, cleaned):
        """The chosen kind checks its fields; the text and connection fields only other kinds use are emptied,
        so nothing hidden in the form stays stored as if it were in effect. Switches and choices (headers,
        what to do when no file matches, ...) keep their values: the output settings read some of them."""
        kind = source_kinds.get(cleaned.get("source_kind"))
        if kind is None:
            return  # the choice field already said why
        kind.clean(self, cleaned)
        for name in source_kinds.unused_fields(kind):
            field = Task._meta.get_field(name)
            if name not in cleaned or field.choices or not (field.is_relation or field.get_internal_type()
                                                            in ("CharField", "TextField")):
                continue
            cleaned[name] = None if field.is_relation else ""

    def clean(self):
        cleaned = super().clean()
        self._clean_source(cleaned)
        if cleaned.get("processing_location") == Task.TextLocation.INLINE:
            self._require(cleaned, "processing_script")
        elif cleaned.get("processing_location") == Task.TextLocation.REMOTE:
            self._require(cleaned, "processing_connection", "processing_path")
        project = cleaned.get("project")
        if project:
            outsiders = [user.username for user in cleaned.get("publish_to_users") or ()
                         if not access.organization_rights(user, project.organization_id).can_view]
            if outsiders:
                self.add_error("publish_to_users", "Not members of the project's organization: "
                                                   + ", ".join(outsiders))
        if project and Task.code_of(cleaned) != Task.code_of(self.instance if self.instance.pk else {}):
            if not access.project_rights(self.user, project).can_write_code:
                self.add_error(None, access.refusal(access.CODE))
        if project:
            for name in ("source_connection", "text_connection", "processing_connection", "gpg_key",
                         *(setting.name for setting in inheritance.SETTINGS if setting.is_connection)):
                connection = cleaned.get(name)
                if connection and connection.organization_id != project.organization_id:
                    self.add_error(name, f"{connection.name} belongs to another organization than the project.")
        self._check_parameter_texts(cleaned)
        if cleaned.get("file_format") == Task.FileFormat.FIXED:
            from connections.protocols import ConnectorError
            from runs.fixed_width import parse_layout

            try:
                parse_layout(cleaned.get("fixed_width_layout"))
            except ConnectorError as exc:
                self.add_error("fixed_width_layout", exc.message)
        test_mode = cleaned.get("test_mode")
        if test_mode is None and project:
            test_mode = inheritance.inherited_for(project)["test_mode"].value
        test_email = cleaned.get("test_email") or (
            inheritance.inherited_for(project)["test_email"].value if project else "")
        if test_mode and not test_email:
            from django.conf import settings

            if not getattr(settings, "ETL_EMAIL_TEST_ADDRESS", ""):
                self.add_error("test_email", "Test mode needs a test address.")
        return cleaned


    def _check_parameter_texts(self, cleaned):
        """Names with parameters and date codes are checked now, as the run would (runs/parameters.py):
        an unknown code or name, an unclosed brace, a misplaced firstday/lastday."""
        from runs.parameters import ParameterError, check_text, known_names

        names = known_names(cleaned.get("project"), self.instance, self.data)
        for name in ("file_name", "zip_name", "file_folder", "file_pattern", "destination_folder"):
            text = cleaned.get(name) or ""
            for part in text.split(";") if name == "file_pattern" else [text]:
                try:
                    check_text(part, names)
                except ParameterError as exc:
                    self.add_error(name, exc.message)
                    break


class ParameterForm(forms.ModelForm):
    """Sensitive values are write-only: blank keeps the stored value."""

    value = forms.CharField(required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))

    class Meta:
        model = Parameter
        fields = ("key", "value", "sensitive")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.sensitive:
            self.initial["value"] = ""
            self.fields["value"].widget = forms.PasswordInput(render_value=False)
            self.fields["value"].help_text = "Stored; leave blank to keep."

    def clean_value(self):
        value = self.cleaned_data["value"]
        if not value and self.instance.pk and self.instance.sensitive:
            return self.instance.value
        return value


def _formset(model, fields, fk_name=None, form=forms.ModelForm, widgets=None):
    return inlineformset_factory(Task, model, form=form, fields=fields, fk_name=fk_name, extra=1, can_delete=True,
                                 widgets=widgets or {})


class DestinationForm(OmittedKeepsDefault, forms.ModelForm):
    keep_default = ("ack_wait_minutes", "ack_failure")


DestinationFormSet = _formset(Destination, ("connection", "folder", "overwrite", "skip_empty", "marker", "marker_name",
                                            "ack_pattern", "nack_pattern", "ack_wait_minutes", "ack_failure",
                                            "position"), form=DestinationForm)
ParameterFormSet = _formset(Parameter, ("key", "value", "sensitive"), form=ParameterForm)
ConditionFormSet = _formset(Condition, ("kind", "connection", "query", "operator", "value"),
                            widgets={"query": forms.Textarea(attrs={"rows": 2, "class": "font-monospace"})})
NotificationFormSet = _formset(
    Notification, ("event", "smtp_connection", "recipients", "cc", "bcc", "subject", "message", "include_output",
                   "max_attachment_bytes", "attach_manifest"),
    widgets={name: forms.Textarea(attrs={"rows": 2}) for name in ("recipients", "cc", "bcc", "message")})
DependencyFormSet = _formset(Dependency, ("upstream", "on"), fk_name="downstream", widgets={
    "upstream": SearchSelect("tasks:pick-task", placeholder="Find a task: type part of its or its project's name")})


def task_choice_label(task):
    """How a task is named in pickers: tasks of different projects may share a name."""
    return f"{task.name} · {task.project.name}"


def upstream_choices(user, task=None):
    """The tasks a task may run after: those the user sees, but itself (a cycle is refused on save)."""
    tasks = Task.objects.visible_to(user).select_related("project").order_by("project__name", "name", "pk")
    return tasks.exclude(pk=task.pk) if task is not None and task.pk else tasks


# Which tab holds each inline list, so a list with an error opens its tab.
FORMSET_TABS = {"parameters": "section-source", "destinations": "section-delivery",
                "notifications": "section-notifications", "dependencies": "section-schedule",
                "conditions": "section-schedule"}


def task_formsets(user, data=None, instance=None, parameter_help=""):
    """The inline lists of the task form, their connection and task choices limited to what the user sees;
    `parameter_help` (the task form's) goes under the fields that take parameters."""
    instance = instance or Task()
    connections = Connection.objects.visible_to(user)
    sets = {
        "destinations": DestinationFormSet(data, instance=instance, prefix="destinations"),
        "parameters": ParameterFormSet(data, instance=instance, prefix="parameters"),
        "conditions": ConditionFormSet(data, instance=instance, prefix="conditions"),
        "notifications": NotificationFormSet(data, instance=instance, prefix="notifications"),
        "dependencies": DependencyFormSet(data, instance=instance, prefix="dependencies"),
    }
    # Each picker offers only the connections that can do its job; the form refuses any other.
    pickers = {"destinations": ("connection", FILES, "a destination"),
               "conditions": ("connection", DATABASE, "a condition query"),
               "notifications": ("smtp_connection", MAIL, "sending email")}
    for prefix, formset in sets.items():
        for form in formset.forms + [formset.empty_form]:
            if prefix in pickers:
                name, capability, what = pickers[prefix]
                offer_only(form.fields[name], connections, capability, what)
            for name, label in form_words.FORMSET_LABELS.get(prefix, {}).items():
                form.fields[name].label = label
            for name in form_words.FORMSET_PARAMETER_FIELDS.get(prefix, ()):
                form.fields[name].help_text = parameter_help
            if "upstream" in form.fields:
                # A search picker (etl_portal/widgets.py): rendering every visible task took seconds at 10,000.
                upstream = form.fields["upstream"]
                upstream.queryset = upstream_choices(user, instance)
                upstream.label_from_instance = task_choice_label
                upstream.widget.search_params = {"exclude": instance.pk}
    return sets
