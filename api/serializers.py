"""API representations. Writes are validated by the pages' own forms (TaskForm, ProjectForm, ConnectionForm), so
the API obeys exactly the rules of the pages; these serializers shape JSON and describe it in the schema.

Task fields are built from the model's concrete fields (minus internal ones), so a field added to Task appears
here without code changes.
"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from rest_framework import serializers

from api.webhooks import WebhookSerializer, replace_webhooks
from connections.models import Connection, MaintenanceWindow
from projects import access
from projects.models import Organization, Parameter, Project, Trigger
from runs.models import DryRun, Run, RunFile, RunLog
from runs.orchestration import find_cycle
from tasks import inheritance
from tasks.forms import LIST_PICKERS, TaskForm, refusal_for
from tasks.models import Condition, Dependency, Destination, Notification, Task

INTERNAL = {"id", "created_at", "updated_at"}


def concrete_names(model, exclude=()):
    return [field.name for field in model._meta.concrete_fields if field.name not in INTERNAL | set(exclude)]


def form_errors(form, prefix=""):
    """A form's errors as DRF's {field: [messages]}, the form-wide ones under non_field_errors."""
    return {prefix + (name if name != "__all__" else "non_field_errors"): list(messages)
            for name, messages in form.errors.items()}


def as_form_data(values):
    """Model instances to primary keys, lists of instances to lists of keys, None to "": what a form reads."""
    data = {}
    for name, value in values.items():
        if isinstance(value, (list, tuple, set)) or hasattr(value, "all"):
            value = [getattr(item, "pk", item) for item in (value.all() if hasattr(value, "all") else value)]
        elif value is None:
            value = ""
        else:
            value = getattr(value, "pk", value)
        data[name] = value
    return data


def request_user(serializer):
    return serializer.context["request"].user


def require_for_new(serializer, attrs, user, need):
    """Creating an object in an organization: one the user does not see is "not found" on the field (as a
    choice), one where they may not do `need` a 403. Changing an existing object was checked when it was
    fetched (projects.access)."""
    organization = attrs.get("organization")
    if serializer.instance is None and organization is not None:
        rights = access.organization_rights(user, organization)
        if not rights.can_view:
            raise serializers.ValidationError({"organization": ["Not found, or you may not see it."]})
        access.require(rights, need)


class KnownPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary-key field that, given `lookup` (a callable returning {pk: object} of its queryset, from a
    PickerCache), finds the object there instead of querying: the API's bulk reads each picker once per request."""

    lookup = None

    def to_internal_value(self, data):
        if self.lookup is None:
            return super().to_internal_value(data)
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("incorrect_type", data_type=type(data).__name__)
        known = self.lookup()
        try:
            return known[int(data)]
        except KeyError:
            self.fail("does_not_exist", pk_value=data)
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)


def look_up_once(fields, pickers, prefix):
    """Point every primary-key field among `fields` (and the children of many-valued ones) at `pickers`."""
    for name, field in fields.items():
        field = getattr(field, "child_relation", field)
        if isinstance(field, KnownPrimaryKeyRelatedField) and field.queryset is not None:
            key, queryset = (*prefix, name), field.queryset.all()  # a manager (User.objects) too
            field.lookup = lambda key=key, queryset=queryset: pickers.known(key, queryset)


class BriefSerializer(serializers.Serializer):
    """The brief representation of a related object (NetBox style): id and name."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class LevelSettingsField(serializers.JSONField):
    """The shared settings set at this level (tasks/inheritance.py): {name: value}, a connection by id; a name
    left out is not set here and inherits. On a write the object given replaces the stored one."""


def checked_level_settings(value, organization):
    try:
        return inheritance.clean_level_settings(value, organization)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"settings": exc.message_dict if hasattr(exc, "error_dict")
                                           else exc.messages}) from None


# --- projects ----------------------------------------------------------------------------------------------


class ParameterSerializer(serializers.ModelSerializer):
    """A sensitive value is write-only: never returned; left out on a change, the stored one is kept."""

    value = serializers.CharField(required=False, allow_blank=True, max_length=100_000)

    class Meta:
        model = Parameter
        fields = ("key", "value", "sensitive")

    def to_representation(self, parameter):
        data = super().to_representation(parameter)
        if parameter.sensitive:
            data["value"] = None
        return data


class TriggerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trigger
        fields = ("id", "kind", "enabled", "time_zone", "jitter_seconds", "start_at", "end_at", "year", "month",
                  "day", "week", "day_of_week", "hour", "minute", "second", "every", "unit", "run_at",
                  "next_run_at", "last_fired_at")
        read_only_fields = ("next_run_at", "last_fired_at")


def replace_parameters(owner_field, owner, items):
    """Replace an owner's parameters by `items`, matched by key; a sensitive one given without a value keeps its
    stored value. Unchanged parameters are not saved again, so a repeated request writes no history. Returns
    whether the value of a parameter sensitive before and after changed: a change no answer shows."""
    stored = {parameter.key: parameter for parameter in Parameter.objects.filter(**{owner_field: owner})}
    secret_changed = False
    for item in items:
        parameter = stored.get(item["key"]) or Parameter(**{owner_field: owner}, key=item["key"])
        keeps = parameter.pk and parameter.sensitive and "value" not in item
        value = parameter.value if keeps else item.get("value", "")
        sensitive = item.get("sensitive", False)
        if parameter.pk is None or (parameter.value, parameter.sensitive) != (value, sensitive):
            secret_changed |= bool(parameter.pk and parameter.sensitive and sensitive)
            parameter.value, parameter.sensitive = value, sensitive
            parameter.save()
    Parameter.objects.filter(**{owner_field: owner}).exclude(key__in=[item["key"] for item in items]).delete()
    return secret_changed


def _values(model, item, names):
    """The stored form of each writable field of a nested item: model defaults for those left out, keys for
    related objects (compared by attname, so no related row is fetched)."""
    template = model(**item)
    return {model._meta.get_field(name).attname: getattr(template, model._meta.get_field(name).attname)
            for name in names}


def replace_list(manager, items, names):
    """Make the objects of a nested list (`manager`, e.g. task.destinations) equal `items`, its given list.

    Idempotent: an item equal to a stored object keeps it as it is (no save, no history, no new id; a trigger
    keeps its schedule), whatever the order. The stored objects no item equals are deleted, then the other items
    created (deleting first: a changed dependency may reuse its upstream task, which is unique per task); each
    through delete/save, so history records every change and a trigger's signals its schedule."""
    model, owner_name = manager.model, manager.field.name
    stored = list(manager.all())
    unmatched = []
    for values in (_values(model, item, names) for item in items):
        same = next((obj for obj in stored if all(getattr(obj, k) == v for k, v in values.items())), None)
        if same is not None:
            stored.remove(same)
        else:
            unmatched.append(values)
    for obj in stored:
        obj.delete()
    for values in unmatched:
        obj = model(**{owner_name: manager.instance})
        for attname, value in values.items():
            setattr(obj, attname, value)
        obj.save()


def refuse_repeats(attrs, lists):
    """A key given twice in a nested list ((list, key) pairs: a parameter key, an upstream task): a 400 naming
    it, not a clash in the database."""
    for name, key in lists:
        seen = set()
        for index, item in enumerate(attrs.get(name) or ()):
            value = getattr(item.get(key), "pk", item.get(key))
            if value in seen:
                raise serializers.ValidationError({name: {index: {key: ["Given twice in this list."]}}})
            seen.add(value)


def writable_names(list_serializer):
    return [name for name, field in list_serializer.child.fields.items() if not field.read_only]


def replace_nested(serializer, owner, attrs):
    """Every nested list given in `attrs` replaces the owner's stored one (parameters by key, webhooks by name
    (api/webhooks.py), the others by replace_list); a list left out is kept. The one place the API writes nested
    lists. Returns whether a secret changed (a sensitive parameter's value, a webhook's secret): a change no answer
    shows."""
    secret_changed = False
    for name, field in serializer.fields.items():
        if name not in attrs or not isinstance(field, serializers.ListSerializer) or field.read_only:
            continue
        if name == "parameters":
            secret_changed |= replace_parameters(owner._meta.model_name, owner, attrs[name])
        elif name == "webhooks":
            secret_changed |= replace_webhooks(owner, attrs[name])
        else:
            replace_list(getattr(owner, name), attrs[name], writable_names(field))
    return secret_changed


class OrganizationSerializer(serializers.ModelSerializer):
    """An organization's shared settings, parameters and webhooks (those reach every task of the organization;
    api/webhooks.py) are writable by its admins (PATCH)."""

    role = serializers.SerializerMethodField()
    settings = LevelSettingsField(required=False)
    parameters = ParameterSerializer(many=True, required=False)
    webhooks = WebhookSerializer(many=True, required=False)

    class Meta:
        model = Organization
        fields = ("id", "name", "created_at", "role", "settings", "parameters", "webhooks")
        read_only_fields = ("name", "created_at")

    def get_role(self, organization) -> str:
        return access.organization_rights(request_user(self), organization).role

    def validate(self, attrs):
        refuse_repeats(attrs, (("parameters", "key"), ("webhooks", "name")))
        if "settings" in attrs:
            attrs["settings"] = checked_level_settings(attrs["settings"], self.instance)
        return attrs

    @transaction.atomic
    def save(self, **kwargs):
        attrs = self.validated_data
        if "settings" in attrs:
            inheritance.save_level_settings(self.instance, attrs["settings"])
        if "parameters" in attrs:
            replace_parameters("organization", self.instance, attrs["parameters"])
        if "webhooks" in attrs:
            replace_webhooks(self.instance, attrs["webhooks"])
        return self.instance


class ProjectSerializer(serializers.ModelSerializer):
    """A project with its triggers, parameters and webhooks (nested, writable: a given list replaces the stored
    one; webhooks as api/webhooks.py says), and its shared settings (`settings`, the object given replaces the
    stored one)."""

    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    owner = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all(), required=False)
    editor_groups = serializers.PrimaryKeyRelatedField(queryset=Group.objects.all(), many=True, required=False)
    triggers = TriggerSerializer(many=True, required=False)
    parameters = ParameterSerializer(many=True, required=False)
    settings = LevelSettingsField(required=False)
    webhooks = WebhookSerializer(many=True, required=False)

    class Meta:
        model = Project
        fields = ("id", "organization", "name", "description", "owner", "editor_groups", "enabled", "mode",
                  "max_parallel", "time_zone", "missed_runs", "created_at", "updated_at", "triggers", "parameters",
                  "settings", "webhooks")

    def validate(self, attrs):
        from projects.forms import ProjectForm, TriggerForm

        user = request_user(self)
        require_for_new(self, attrs, user, access.EDIT)
        refuse_repeats(attrs, (("parameters", "key"), ("webhooks", "name")))
        base = model_to_dict(self.instance or Project(owner_id=user.pk), fields=ProjectForm._meta.fields)
        plain = {name: value for name, value in attrs.items() if name in ProjectForm._meta.fields}
        form = ProjectForm(data=as_form_data({**base, **plain}), instance=self.instance, user=user)
        if not form.is_valid():
            raise serializers.ValidationError(form_errors(form))
        for index, trigger in enumerate(attrs.get("triggers") or ()):
            # Fields left out take the model's defaults, as the schema says (the form would call them missing).
            defaults = model_to_dict(Trigger(), fields=TriggerForm._meta.fields)
            trigger_form = TriggerForm(data=as_form_data({**defaults, **trigger}))
            trigger_form.fields.pop("project", None)
            trigger_form.fields.pop("system_job", None)
            if not trigger_form.is_valid():
                raise serializers.ValidationError({"triggers": {index: form_errors(trigger_form)}})
        if "settings" in attrs:
            organization = attrs.get("organization") or getattr(self.instance, "organization", None)
            attrs["settings"] = checked_level_settings(attrs["settings"], organization)
        attrs["_form"] = form
        return attrs

    @transaction.atomic
    def save(self, **kwargs):
        attrs = self.validated_data
        project = attrs["_form"].save()
        if "settings" in attrs:
            inheritance.save_level_settings(project, attrs["settings"])
        replace_nested(self, project, attrs)  # a trigger's signals keep its django-q2 schedule in step
        self.instance = project
        return project


# --- tasks -------------------------------------------------------------------------------------------------


class DestinationSerializer(serializers.ModelSerializer):
    serializer_related_field = KnownPrimaryKeyRelatedField

    class Meta:
        model = Destination
        fields = ("connection", "folder", "overwrite", "skip_empty", "marker", "marker_name", "ack_pattern",
                  "nack_pattern", "ack_wait_minutes", "ack_failure", "position")

    def validate(self, attrs):
        errors = Destination.proof_setting_errors(attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ConditionSerializer(serializers.ModelSerializer):
    serializer_related_field = KnownPrimaryKeyRelatedField

    class Meta:
        model = Condition
        fields = concrete_names(Condition, exclude=("task",))


class NotificationSerializer(serializers.ModelSerializer):
    serializer_related_field = KnownPrimaryKeyRelatedField

    class Meta:
        model = Notification
        fields = concrete_names(Notification, exclude=("task",))


class DependencySerializer(serializers.ModelSerializer):
    serializer_related_field = KnownPrimaryKeyRelatedField

    class Meta:
        model = Dependency
        fields = ("upstream", "on")


NESTED = {"destinations": DestinationSerializer, "conditions": ConditionSerializer,
          "notifications": NotificationSerializer, "upstream_links": DependencySerializer}


class EffectiveListSerializer(serializers.ListSerializer):
    """A page of tasks: their shared settings resolved together (one query for the connections they name)."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        inheritance.resolve_many(items)
        return super().to_representation(items)


class TaskSerializer(serializers.ModelSerializer):
    """A task with every setting: destinations, conditions, emails, dependencies ("runs after"), parameters and
    webhooks (api/webhooks.py: matched by name, the secret write-only, the URL whole only to its editors).

    A nested list given on a write replaces the stored one; a list left out is kept. A shared setting
    (tasks/inheritance.py) is null when the task inherits it; `effective_settings` gives each one's value in
    effect, its level (task, project, organization or default) and the id of the object that sets it. With a
    PickerCache in the context ("pickers"), the choices are read once for many tasks (the bulk)."""

    serializer_related_field = KnownPrimaryKeyRelatedField
    destinations = DestinationSerializer(many=True, required=False)
    conditions = ConditionSerializer(many=True, required=False)
    notifications = NotificationSerializer(many=True, required=False)
    upstream_links = DependencySerializer(many=True, required=False, help_text="Runs after these tasks.")
    parameters = ParameterSerializer(many=True, required=False)
    webhooks = WebhookSerializer(many=True, required=False)
    # Its upper bound is a setting read at validation time (the form checks it); the schema cannot hold a callable.
    timeout_seconds = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                               help_text="Null: inherited, else the portal's default.")
    effective_settings = serializers.SerializerMethodField()

    class Meta:
        model = Task
        list_serializer_class = EffectiveListSerializer
        fields = (["id"] + concrete_names(Task) + [field.name for field in Task._meta.many_to_many]
                  + ["created_at", "updated_at", "destinations", "conditions", "notifications", "upstream_links",
                     "parameters", "webhooks", "effective_settings"])
        read_only_fields = ("created_at", "updated_at")

    def get_effective_settings(self, task) -> dict:
        return {name: item.as_api() for name, item in task.effective_settings().items()}

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:  # choices limited to what the user sees, as in the page's pickers
            visible = Connection.objects.visible_to(request.user)
            for name in ("source_connection", "text_connection", "processing_connection", "gpg_key",
                         *(setting.name for setting in inheritance.SETTINGS if setting.is_connection)):
                fields[name].queryset = visible
            # Editor groups with it: project_rights reads them for each task.
            fields["project"].queryset = Project.objects.visible_to(request.user).prefetch_related("editor_groups")
            for name, (child_field, capability, what) in LIST_PICKERS.items():  # as the page's inline lists
                field = fields[name].child.fields[child_field]
                field.queryset = visible.with_capability(capability)
                field.error_messages["does_not_exist"] = refusal_for(capability, what)
            fields["upstream_links"].child.fields["upstream"].queryset = Task.objects.visible_to(request.user)
        pickers = self.context.get("pickers")
        if pickers is not None:
            look_up_once(fields, pickers, ("api",))
            for name in NESTED:
                look_up_once(fields[name].child.fields, pickers, ("api", name))
        return fields

    def validate(self, attrs):
        user = request_user(self)
        project = attrs.get("project") or getattr(self.instance, "project", None)
        if project is not None:
            access.require(access.project_rights(user, project), access.EDIT)  # 403, as the pages
        refuse_repeats(attrs, (("parameters", "key"), ("upstream_links", "upstream"), ("webhooks", "name")))
        form_fields = TaskForm._meta.model._meta
        names = [field.name for field in form_fields.concrete_fields + form_fields.many_to_many
                 if field.editable and field.name not in INTERNAL]
        base = model_to_dict(self.instance or Task(), fields=names)
        plain = {name: value for name, value in attrs.items() if name in names}
        data = as_form_data({**base, **plain})
        # The parameters saved with the task, as the page posts them: file names may use them.
        data.update({f"parameters-{index}-key": item["key"] for index, item in enumerate(attrs.get("parameters")
                                                                                         or ())})
        form = TaskForm(data=data, instance=self.instance, user=user, pickers=self.context.get("pickers"))
        if not form.is_valid():
            raise serializers.ValidationError(form_errors(form))
        if project is not None:
            for name, items in attrs.items():
                for index, item in enumerate(items if name in NESTED else ()):
                    for key in ("connection", "smtp_connection"):
                        connection = item.get(key)
                        if connection is not None and connection.organization_id != project.organization_id:
                            raise serializers.ValidationError({name: {index: {key: [
                                f"{connection.name} belongs to another organization than the project."]}}})
        attrs["_form"] = form
        return attrs

    def save(self, **kwargs):
        with transaction.atomic():
            self.instance = save_task(self, self.validated_data)
        return self.instance


def save_task(serializer, attrs):
    """Save a validated task write (the form, then each nested list given); refuse a dependency cycle. Sets
    `serializer.secret_changed` (replace_nested)."""
    task = attrs["_form"].save()
    serializer.secret_changed = replace_nested(serializer, task, attrs)
    cycle = find_cycle(task)
    if cycle:
        raise serializers.ValidationError({"upstream_links": [
            "These dependencies would make a cycle: " + " → ".join(t.name for t in cycle)]})
    return task


class TaskBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ("id", "name", "project", "enabled", "source_kind")


# --- connections -------------------------------------------------------------------------------------------


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    """Read only here: windows are edited on the connection's page and in the admin."""

    days = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = ("id", "kind", "days", "start_time", "end_time", "starts_at", "ends_at", "time_zone", "note")

    def get_days(self, window) -> list[int]:
        """0 Monday ... 6 Sunday."""
        return [int(day) for day in window.days]


class ConnectionSerializer(serializers.ModelSerializer):
    """Secrets are write-only: give them as `secrets: {"password": ...}`; the answer only names which are stored.
    Changing where a connection points drops the stored secrets not given again, as on the page."""

    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True), write_only=True,
                                    required=False)
    stored_secrets = serializers.SerializerMethodField()
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    maintenance_windows = MaintenanceWindowSerializer(many=True, read_only=True)

    class Meta:
        model = Connection
        fields = ("id", "organization", "name", "kind", "description", "max_runs", "host", "port", "username",
                  "database", "path", "options", "host_key", "secrets", "stored_secrets", "last_tested_at", "last_test_ok",
                  "last_test_message", "maintenance_windows", "created_at", "updated_at")
        read_only_fields = ("host_key", "last_tested_at", "last_test_ok", "last_test_message")

    def get_stored_secrets(self, connection) -> list[str]:
        return sorted(name for name, value in (connection.secrets or {}).items() if value)

    def validate(self, attrs):
        from connections.forms import ConnectionForm

        user = request_user(self)
        require_for_new(self, attrs, user, access.MANAGE)
        fields = ("organization", "name", "kind", "description", "max_runs", "host", "port", "username", "database",
                  "path")
        data = as_form_data(model_to_dict(self.instance or Connection(), fields=fields))
        data.update(as_form_data({name: attrs[name] for name in fields if name in attrs}))
        data.update((self.instance.options or {}) if self.instance else {})
        data.update(attrs.get("options") or {})
        data.update(attrs.get("secrets") or {})
        form = ConnectionForm(data=data, instance=self.instance, user=user)
        if not form.is_valid():
            raise serializers.ValidationError(form_errors(form))
        attrs["_form"] = form
        return attrs

    def save(self, **kwargs):
        form = self.validated_data["_form"]
        self.instance = form.save()
        self.dropped_secrets_message = form.dropped_secrets_message()
        return self.instance


# --- runs and files ----------------------------------------------------------------------------------------


class RunSerializer(serializers.ModelSerializer):
    task = TaskBriefSerializer(read_only=True)

    class Meta:
        model = Run
        fields = ("id", "task", "status", "trigger", "attempt", "requested_by", "scheduled_for", "created_at",
                  "started_at", "finished_at", "error", "rows", "priority", "cancel_requested", "backfill")


class DryRunSerializer(serializers.ModelSerializer):
    task = TaskBriefSerializer(read_only=True)
    report = serializers.JSONField(read_only=True, help_text="runs/dry_run.py: query, rows, first rows, files, "
                                                             "destinations with remote paths, emails, GPG key, "
                                                             "maintenance windows a run now would wait for.")

    class Meta:
        model = DryRun
        fields = ("id", "task", "status", "scheduled_for", "created_at", "finished_at", "error", "report")


class RunStartSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(required=False, help_text="Run as of this date (its parameters' today); "
                                                                "default: now.")


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunLog
        fields = ("id", "created_at", "level", "message")


class RunFileSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name", read_only=True)
    deliveries = serializers.JSONField(source="shown_deliveries", read_only=True)
    available = serializers.BooleanField(source="is_available", read_only=True)

    class Meta:
        model = RunFile
        fields = ("id", "run", "name", "size", "md5", "created_at", "purged_at", "available", "deliveries")


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField()
    name = serializers.CharField()
    result = serializers.ChoiceField(choices=["created", "updated", "unchanged"])


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    tasks = BulkItemResultSerializer(many=True)
