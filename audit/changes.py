"""Turn simple-history records into entries a person reads: when, who, which object, "field: old -> new".

simple-history stores a full copy of a row per change (encrypted fields stay encrypted in the copy, so
the history tables hold ciphertext only). The diff is computed here, at display time, because only here
can a secret be replaced by "changed": a connection's `secrets` shows which secret names changed, a
sensitive parameter's value (or one that was ever sensitive) shows "changed", never a value.

Cost: two queries per kind of object (the page of records with the id of each one's previous version,
then those previous versions), one per many-to-many field, one per kind of related object named.
"""
import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Case, CharField, F, OuterRef, Subquery, Value, When
from django.db.models.functions import Cast, Coalesce, Concat, NullIf
from django.utils import timezone
from simple_history.models import HistoricalRecords
from simple_history.utils import get_m2m_reverse_field_name

from audit.actors import SYSTEM_PREFIX
from connections.secrets import EncryptedJSONField, EncryptedTextField

CHANGED = "changed"
# Bookkeeping a person did not change (timestamps, what the scheduler and connection tests write).
IGNORED = {"id", "created_at", "updated_at", "next_run_at", "last_fired_at", "last_tested_at", "last_test_ok",
           "last_test_message"}
MAX_CHARS = 200
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
KIND_NAMES = {"tasks.notification": "email", "projects.parameter": "parameter", "tasks.dependency": "dependency",
              "alerts.webhook": "webhook"}


@dataclass
class Change:
    field: str
    old: str = ""
    new: str = ""
    masked: bool = False  # a secret: the page says only that it was changed/set/cleared


@dataclass
class Entry:
    when: object
    who: str
    is_system: bool
    action: str
    kind: str
    label: str
    changes: list = field(default_factory=list)
    note: str = ""


def _choice_label(model, name):
    choices = model._meta.get_field(name).flatchoices
    return Case(*[When(**{name: value}, then=Value(str(text))) for value, text in choices],
                default=F(name), output_field=CharField())


def _object_label(model):
    """A database expression naming the object of a record, so no row needs another query to be named."""
    key = model._meta.label_lower
    blank = Value("?")
    if key == "tasks.destination":
        return Concat(Coalesce("connection__name", blank), Value(": "), Coalesce(NullIf("folder", Value("")),
                                                                                Value("/")),
                      output_field=CharField())
    if key == "tasks.dependency":
        return Concat(Coalesce("upstream__name", blank), Value(" -> "), Coalesce("downstream__name", blank),
                      output_field=CharField())
    if key == "tasks.condition":
        return _choice_label(model, "kind")
    if key == "tasks.notification":
        return Concat(_choice_label(model, "event"), Value(" email"), output_field=CharField())
    if key == "projects.trigger":
        return Concat(_choice_label(model, "kind"), Value(" trigger "), Cast("id", CharField()),
                      output_field=CharField())
    if key == "projects.parameter":
        return F("key")
    if key == "projects.membership":
        return Concat(Coalesce("user__username", blank), Value(" in "), Coalesce("organization__name", blank),
                      output_field=CharField())
    return Cast("name", CharField())


def kind_name(model):
    return KIND_NAMES.get(model._meta.label_lower, str(model._meta.verbose_name))


def with_labels(queryset):
    model = queryset.model.instance_type
    return queryset.select_related("history_user").annotate(audit_label=_object_label(model))


# --- who -----------------------------------------------------------------------------------------------

def describe_author(user, reason):
    """(text, is_system) for a record's author."""
    if user is not None:
        return user.get_username(), False
    if reason and reason.startswith(SYSTEM_PREFIX):
        return reason, True
    return "a deleted user", False


# --- values --------------------------------------------------------------------------------------------

class _Names:
    """Names of related objects (connections, tasks, users, groups), looked up once per model."""

    def __init__(self):
        self.wanted = defaultdict(set)
        self.found = {}

    def want(self, model, pk):
        if pk is not None:
            self.wanted[model].add(pk)

    def load(self):
        for model, ids in self.wanted.items():
            for pk, obj in model._default_manager.order_by().in_bulk(ids).items():
                self.found[model, pk] = str(obj)
        self.wanted.clear()

    def get(self, model, pk):
        return self.found.get((model, pk), f"#{pk} (deleted)")


def _short(text):
    text = str(text)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "…"


def _show(model_field, value, names):
    if value is None or value == "":
        return "(blank)"
    if model_field.is_relation:
        return names.get(model_field.related_model, value)
    if model_field.flatchoices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "tzinfo") and value.tzinfo is not None:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    if isinstance(value, (dict, list)):
        return _short(json.dumps(value, sort_keys=True))
    return _short(value)


def _diffable_fields(record):
    return [f for f in record.tracked_fields if f.name not in IGNORED and f.attname not in IGNORED]


def _secret_changes(name, old, new, created):
    """Names of the secrets that changed, never a value."""
    old, new = dict(old or {}), dict(new or {})
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        verb = "set" if created or not old.get(key) else ("cleared" if not new.get(key) else CHANGED)
        changes.append(Change(f"{name} {key}", new=verb, masked=True))
    return changes


def _field_changes(record, prev, m2m, names, hide_values):
    created = prev is None
    changes = []
    for model_field in _diffable_fields(record):
        new = getattr(record, model_field.attname)
        old = getattr(prev, model_field.attname) if prev is not None else model_field.get_default()
        if isinstance(model_field, EncryptedJSONField):
            changes += _secret_changes(model_field.verbose_name, old, new, created)
            continue
        if old == new:
            continue
        if isinstance(model_field, EncryptedTextField) and hide_values:
            changes.append(Change(model_field.verbose_name, new="set" if created else CHANGED, masked=True))
            continue
        if (record.instance_type._meta.label_lower, model_field.name) == ("alerts.webhook", "url"):
            from alerts.models import shown_url  # a Slack or Teams URL's path is its credential

            old, new = (shown_url(value) if value else value for value in (old, new))
            changes.append(Change(model_field.verbose_name, old, new) if old != new else
                           Change(model_field.verbose_name, new=CHANGED, masked=True))
            continue
        changes.append(Change(model_field.verbose_name, _show(model_field, old, names),
                              _show(model_field, new, names)))
    for m2m_field in record._history_m2m_fields:
        old_ids = m2m.get((m2m_field, prev.history_id), set()) if prev is not None else set()
        new_ids = m2m.get((m2m_field, record.history_id), set())
        if old_ids != new_ids:
            target = m2m_field.related_model
            show = lambda ids: ", ".join(sorted(names.get(target, pk) for pk in ids)) or "(none)"  # noqa: E731
            changes.append(Change(m2m_field.verbose_name, show(old_ids), show(new_ids)))
    return changes


def _load_m2m(records):
    """{(m2m field, history_id): set of related ids}, one query per many-to-many field."""
    by_field = defaultdict(list)
    for record in records:
        for m2m_field in record._history_m2m_fields:
            by_field[m2m_field].append(record.history_id)
    found = defaultdict(set)
    for m2m_field, history_ids in by_field.items():
        target = get_m2m_reverse_field_name(m2m_field) + "_id"
        rows = HistoricalRecords.m2m_models[m2m_field].objects.filter(history_id__in=history_ids)
        for history_id, pk in rows.values_list("history_id", target):
            found[m2m_field, history_id].add(pk)
    return found


def _ever_sensitive_parameters(records):
    """Parameter ids with a sensitive version (or sensitive now): their values are never shown."""
    from projects.models import Parameter

    ids = {r.id for r in records if r.instance_type is Parameter}
    if not ids:
        return set()
    flagged = set(Parameter.history.filter(id__in=ids, sensitive=True).values_list("id", flat=True))
    return flagged | set(Parameter.objects.filter(pk__in=ids, sensitive=True).values_list("pk", flat=True))


def describe(pairs):
    """Entries for (record, previous version or None) pairs, in the given order.

    A record whose `audit_details` is False is listed without its fields.
    """
    records = [r for pair in pairs for r in pair if r is not None]
    sensitive = _ever_sensitive_parameters(records)
    m2m = _load_m2m([r for r in records if getattr(r, "audit_details", True)])
    names = _Names()
    for record in records:
        for model_field in _diffable_fields(record):
            if model_field.is_relation:
                names.want(model_field.related_model, getattr(record, model_field.attname))
        for m2m_field in record._history_m2m_fields:
            for pk in m2m.get((m2m_field, record.history_id), ()):
                names.want(m2m_field.related_model, pk)
    names.load()
    entries = []
    for record, prev in pairs:
        who, is_system = describe_author(record.history_user, record.history_change_reason)
        entry = Entry(when=record.history_date, who=who, is_system=is_system,
                      action=ACTIONS.get(record.history_type, record.history_type),
                      kind=kind_name(record.instance_type), label=record.audit_label or f"#{record.id}")
        # Encrypted values are shown only for a parameter never marked sensitive; anything else encrypted
        # (now or in future models) is hidden by default.
        hide = not (record.instance_type._meta.label_lower == "projects.parameter" and record.id not in sensitive)
        if record.history_type == "-" or not getattr(record, "audit_details", True):
            pass
        elif record.history_type == "~" and prev is None:
            entry.note = "first recorded version (made before history was kept)"
        else:
            entry.changes = _field_changes(record, prev, m2m, names, hide)
            if not entry.changes:
                entry.note = "saved, nothing visible changed"
        entries.append(entry)
    return entries


def history_entries(sources, offset=0, limit=50):
    """(entries newest first, whether older ones exist) across the historical querysets in `sources`.

    `sources` holds (historical queryset, details) pairs; details=False lists the record without fields.
    """
    want = offset + limit + 1
    rows = []
    for queryset, details in sources:
        model = queryset.model
        previous = model.objects.filter(id=OuterRef("id"), history_id__lt=OuterRef("history_id"))
        previous = previous.order_by("-history_id").values("history_id")[:1]
        page = with_labels(queryset).annotate(audit_prev_id=Subquery(previous))
        for record in page.order_by("-history_date", "-history_id")[:want]:
            record.audit_details = details
            rows.append(record)
    rows.sort(key=lambda r: (r.history_date, r.history_id), reverse=True)
    has_more = len(rows) > offset + limit
    rows = rows[offset:offset + limit]
    wanted = defaultdict(list)
    for record in rows:
        if record.audit_prev_id and record.audit_details:
            wanted[type(record)].append(record.audit_prev_id)
    previous = {}
    for model, ids in wanted.items():
        for record in with_labels(model.objects.filter(history_id__in=ids)):
            previous[model, record.history_id] = record
    pairs = [(r, previous.get((type(r), r.audit_prev_id))) for r in rows]
    return describe(pairs), has_more


def recent_entries(sources, limit=5):
    """The latest few records across `sources` in one UNION query: who, when, what object, no fields."""
    parts = []
    for queryset, _details in sources:
        model = queryset.model.instance_type
        parts.append(queryset.order_by().annotate(
            a_date=F("history_date"), a_type=F("history_type"), a_kind=Value(kind_name(model), CharField()),
            a_label=_object_label(model), a_user=F("history_user__username"), a_reason=F("history_change_reason"),
        ).values_list("a_date", "a_type", "a_kind", "a_label", "a_user", "a_reason"))
    rows = parts[0].union(*parts[1:], all=True).order_by("-a_date")[:limit]
    entries = []
    for when, kind_code, kind, label, username, reason in rows:
        who, is_system = (username, False) if username else describe_author(None, reason)
        entries.append(Entry(when=when, who=who, is_system=is_system, action=ACTIONS.get(kind_code, kind_code),
                             kind=kind, label=label or ""))
    return entries


# --- what a page covers ------------------------------------------------------------------------------

def task_sources(task_id):
    """The task and its destinations, parameters, conditions, emails and dependencies (either side)."""
    from django.db.models import Q

    from alerts.models import Webhook
    from projects.models import Parameter
    from tasks.models import Condition, Dependency, Destination, Notification, Task

    return [
        (Task.history.filter(id=task_id), True),
        (Destination.history.filter(task_id=task_id), True),
        (Parameter.history.filter(task_id=task_id), True),
        (Condition.history.filter(task_id=task_id), True),
        (Notification.history.filter(task_id=task_id), True),
        (Webhook.history.filter(task_id=task_id), True),
        (Dependency.history.filter(Q(upstream_id=task_id) | Q(downstream_id=task_id)), True),
    ]


def organization_sources(organization_id):
    """The organization (its shared settings), its parameters and webhooks; members have their own history."""
    from alerts.models import Webhook
    from projects.models import Organization, Parameter

    return [
        (Organization.history.filter(id=organization_id), True),
        (Parameter.history.filter(organization_id=organization_id), True),
        (Webhook.history.filter(organization_id=organization_id), True),
    ]


def project_sources(project_id):
    """The project, its triggers and parameters, and which tasks were added to or deleted from it."""
    from alerts.models import Webhook
    from projects.models import Parameter, Project, Trigger
    from tasks.models import Task

    return [
        (Project.history.filter(id=project_id), True),
        (Trigger.history.filter(project_id=project_id), True),
        (Webhook.history.filter(project_id=project_id), True),
        (Parameter.history.filter(project_id=project_id), True),
        (Task.history.filter(project_id=project_id, history_type__in=["+", "-"]), False),
    ]
