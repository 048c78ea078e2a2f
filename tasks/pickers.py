"""The task form's choices read once for many forms: the API's bulk validates up to 1,000 task forms of one user
in one request (tasks.forms.TaskForm with `pickers`), and each form asking the database again for every picker,
posted choice, project parameter and editor group cost about 25 queries per task."""
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.functional import cached_property

from connections.models import Connection
from connections.protocols import KEY, TEXT
from projects import access
from projects.models import Organization, Project


def task_offers(user):
    """What each picker of the task form offers `user`: {field name: queryset}. Connections: the user's
    organizations' (a picker that needs a capability, only those having it); people and groups: of the
    organizations the user works in (the file hub publishes to no one else)."""
    connections = Connection.objects.visible_to(user).select_related("organization")
    organizations = Organization.objects.where_role(user)
    # Any kind may be a source (a script gets its settings); clean() checks it against the source kind.
    return {"project": Project.objects.editable_by(user), "source_connection": connections,
            "text_connection": connections.with_capability(TEXT),
            "processing_connection": connections.with_capability(TEXT),
            "gpg_key": connections.with_capability(KEY),
            "publish_to_users": access.users_of(organizations), "publish_to_groups": access.groups_of(organizations)}


class SharedFields(dict):
    """Form fields that several forms use as they are: copying them for a form copies the dict, not the fields.
    Only for forms that are validated, never rendered (PickerCache): a field holds no state of one form's
    validation (bound values and errors live on the form), and the fields set up per form (labels, help, pickers)
    are the same for every form of the request."""

    def __deepcopy__(self, memo):
        return dict(self)


class PickerCache:
    """What the task form's pickers offer one user, each fetched once: the API's bulk validates up to 1,000 task
    forms for the same user, and without it every form asked the database again for each picker, each posted
    choice, each project's parameters and editor groups (about 25 queries per task).

    `names_in_use` ((project id, name) -> task id) holds every stored task a checked form could clash with; given
    it, the (project, name) rule is checked against it instead of one query per form. Use a cache for one request
    only: it does not see later changes."""

    def __init__(self, user, names_in_use=None):
        self.user = user
        self.names_in_use = names_in_use
        self.fields = None  # the first form's fields, set up, shared by the next (SharedFields)
        self._known = {}

    @cached_property
    def offers(self):
        """task_offers(user), built once; the projects with their parameters (the help and the names a text may
        use) and editor groups (rights), read with them."""
        offers = task_offers(self.user)
        offers["project"] = offers["project"].select_related("organization").prefetch_related(
            "parameters", "editor_groups", "organization__parameters")
        return offers

    def known(self, key, queryset):
        """{pk: object} of `queryset`, evaluated the first time `key` is asked for."""
        if key not in self._known:
            self._known[key] = {obj.pk: obj for obj in queryset}
        return self._known[key]


class KnownModelChoiceField(forms.ModelChoiceField):
    """A ModelChoiceField that, given `known` ({pk: object} of its queryset, see PickerCache), looks a posted key
    up there instead of querying; the same answers and messages as the queryset would give."""

    known = None

    def to_python(self, value):
        if self.known is None or value in self.empty_values:
            return super().to_python(value)
        self.validate_no_null_characters(value)
        try:
            return self.known[int(getattr(value, "pk", value))]
        except (KeyError, ValueError, TypeError, OverflowError):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                  params={"value": value}) from None


class KnownModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """KnownModelChoiceField's twin for many choices: a list of the known objects instead of a queryset."""

    known = None

    def clean(self, value):
        if self.known is not None and not self.required and not value:
            return []  # the queryset's none(), without compiling it
        return super().clean(value)

    def _check_values(self, value):
        if self.known is None:
            return super()._check_values(value)
        try:
            value = frozenset(value)
        except TypeError:
            raise ValidationError(self.error_messages["invalid_list"], code="invalid_list") from None
        chosen = []
        for pk in value:
            self.validate_no_null_characters(pk)
            try:
                chosen.append(self.known[int(getattr(pk, "pk", pk))])
            except (KeyError, ValueError, TypeError, OverflowError):
                raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                      params={"value": pk}) from None
        return chosen


def known_choice_fields(model_field, **kwargs):
    """The form field of a model field, relations as the Known* fields above (their querysets stay the same)."""
    if isinstance(model_field, models.ManyToManyField):
        kwargs.setdefault("form_class", KnownModelMultipleChoiceField)
    elif isinstance(model_field, models.ForeignKey):
        kwargs.setdefault("form_class", KnownModelChoiceField)
    return model_field.formfield(**kwargs)
