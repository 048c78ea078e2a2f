"""Tasks as code: projects, triggers, parameters, webhooks and tasks as YAML, for git and review before going live.

Connections, users and groups are referenced by name (connections by name within the project's organization);
no secret is ever written: a sensitive parameter's value is left out, and left out on import it keeps the
stored value; a webhook's signing secret is left out too, and kept on import while the webhook's URL stays the
same, removed when the file changes its URL (the plan says so; give `secret` to set one). Import writes through
the API's serializers, so the pages' rules and rights apply; it matches projects by (organization, name), tasks by
(project, name) and webhooks by name within their task, project or organization (api/webhooks.py), deletes the tasks of a listed
project that the file no longer lists, and saves nothing that is already equal (importing the same file twice
changes nothing).

Levels (tasks/inheritance.py) are kept: a project's `settings` and, under `organizations`, each organization's
`settings`, `parameters` and `webhooks` (written only by its admins); a task's shared setting it inherits is null.
"""
from types import SimpleNamespace

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework import serializers as drf

from alerts.models import Webhook
from api.serializers import OrganizationSerializer, ProjectSerializer, TaskSerializer
from api.webhooks import as_shown_where_hidden, losing_secret
from connections.models import Connection
from projects import access
from projects.models import Organization, Project
from tasks import inheritance
from tasks.models import Task

SHARED_CONNECTIONS = {setting.name for setting in inheritance.SETTINGS if setting.is_connection}
CONNECTION_FIELDS = {"source_connection", "text_connection", "processing_connection", "gpg_key", "connection",
                     "smtp_connection"} | SHARED_CONNECTIONS
TASK_SKIP = {"id", "project", "created_at", "updated_at", "effective_settings"}
PROJECT_SKIP = {"id", "organization", "created_at", "updated_at", "triggers", "parameters", "settings",
                "webhooks"}
TRIGGER_SKIP = {"id", "next_run_at", "last_fired_at"}


class ConfigError(Exception):
    """A file that cannot be imported; the message names the place (project, task, field)."""


def _context(user):
    return {"request": SimpleNamespace(user=user)}


def _parameters(items):
    return [{key: value for key, value in item.items() if not (key == "value" and item["sensitive"])}
            for item in items]


def _webhooks(items):
    """Webhooks as the file holds them: no id, and nothing of the secret (not even whether one is set, so a file
    imported into an empty portal exports the same text again)."""
    return [{key: value for key, value in item.items() if key not in ("id", "secret_set")} for item in items]


def _names(user_pks, model, attribute):
    return sorted(model.objects.filter(pk__in=user_pks).values_list(attribute, flat=True))


def project_document(project, user):
    data = ProjectSerializer(project, context=_context(user)).data
    doc = {"organization": project.organization.name, "name": project.name}
    doc.update({key: value for key, value in data.items() if key not in PROJECT_SKIP | {"name"}})
    doc["owner"] = project.owner.username
    doc["editor_groups"] = _names(data["editor_groups"], Group, "name")
    doc["triggers"] = [{key: value for key, value in trigger.items() if key not in TRIGGER_SKIP}
                       for trigger in data["triggers"]]
    doc["parameters"] = _parameters(data["parameters"])
    connections = dict(Connection.objects.filter(organization=project.organization_id).values_list("pk", "name"))
    doc["settings"] = _named_settings(data["settings"], connections)
    doc["webhooks"] = _webhooks(data["webhooks"])
    doc["tasks"] = [task_document(task, user, connections) for task in project.tasks.order_by("name")]
    return doc


def task_document(task, user, connections):
    data = TaskSerializer(task, context=_context(user)).data

    def named(item):
        return {key: (connections.get(value, value) if key in CONNECTION_FIELDS and value else value)
                for key, value in item.items() if key not in TASK_SKIP}

    doc = named(data)
    doc["publish_to_users"] = _names(data["publish_to_users"], get_user_model(), "username")
    doc["publish_to_groups"] = _names(data["publish_to_groups"], Group, "name")
    for key in ("destinations", "conditions", "notifications"):
        doc[key] = [named(item) for item in data[key]]
    upstream = {t.pk: f"{t.project.name}/{t.name}" for t in Task.objects.filter(
        pk__in=[link["upstream"] for link in data["upstream_links"]]).select_related("project")}
    doc["upstream_links"] = sorted(({"upstream": upstream[link["upstream"]], "on": link["on"]}
                                    for link in data["upstream_links"]), key=lambda link: link["upstream"])
    doc["parameters"] = _parameters(data["parameters"])
    doc["webhooks"] = _webhooks(data["webhooks"])
    return doc


def _named_settings(settings, connections):
    """Level settings with connections by name (a file moves between installs, ids do not)."""
    return {name: (connections.get(value, value) if name in SHARED_CONNECTIONS else value)
            for name, value in sorted((settings or {}).items())}


def _settings_ids(settings, connections, where):
    out = {}
    for name, value in (settings or {}).items():
        if name in SHARED_CONNECTIONS and value is not None:
            if value not in connections:
                raise ConfigError(f"{where}: no connection named {value!r} for the setting {name}.")
            value = connections[value]
        out[name] = value
    return out


def organization_document(organization, user):
    data = OrganizationSerializer(organization, context=_context(user)).data
    connections = dict(Connection.objects.filter(organization=organization).values_list("pk", "name"))
    return {"name": organization.name, "settings": _named_settings(data["settings"], connections),
            "parameters": _parameters(data["parameters"]), "webhooks": _webhooks(data["webhooks"])}


def export_config(user, projects=None):
    """The YAML text of these projects (default: every project the user sees) and of their organizations'
    levels (shared settings, parameters), in a stable order."""
    projects = projects if projects is not None else Project.objects.visible_to(user)
    projects = projects.select_related("organization", "owner").order_by("organization__name", "name")
    documents = [project_document(project, user) for project in projects]
    organizations = Organization.objects.filter(pk__in={project.organization_id for project in projects})
    levels = [organization_document(organization, user) for organization in organizations.order_by("name")]
    return yaml.safe_dump({"organizations": levels, "projects": documents}, sort_keys=False, allow_unicode=True,
                          width=120)


def _parse(text):
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("projects", []), list):
        raise ConfigError("The file must be a mapping with a list under `projects`.")
    return data


def _load(text):
    return _parse(text).get("projects", [])


def _load_organizations(text):
    organizations = _parse(text).get("organizations", [])
    if not isinstance(organizations, list) or not all(isinstance(item, dict) and item.get("name")
                                                      for item in organizations):
        raise ConfigError("`organizations` must be a list of mappings, each with a name.")
    return organizations


def _organization_changes(user, wanted):
    organization = Organization.objects.where_role(user).filter(name=wanted["name"]).first()
    if organization is None:
        raise ConfigError(f"There is no organization {wanted['name']!r}, or you may not see it.")
    current = organization_document(organization, user)
    if isinstance(wanted.get("webhooks"), list):
        wanted = {**wanted, "webhooks": as_shown_where_hidden(wanted["webhooks"], current["webhooks"])}
    return organization, [key for key in ("settings", "parameters", "webhooks") if key in wanted
                          and wanted[key] != current.get(key)]


def plan(user, text):
    """What an import would do, as lines like terraform's plan: + create, ~ change (fields), - delete."""
    lines = []
    for wanted in _load_organizations(text):
        organization, changed = _organization_changes(user, wanted)
        if changed:
            lines.append(f"~ organization {wanted['name']}: {', '.join(changed)}")
        if "webhooks" in changed:
            lines.extend(_secret_warnings(f"organization {wanted['name']}", organization.webhooks.all(),
                                          wanted["webhooks"]))
    for wanted in _load(text):
        project = _find_project(user, wanted, must_exist=False)
        current = project_document(project, user) if project else None
        label = f"{wanted.get('organization')}/{wanted.get('name')}"
        if current is None:
            lines.append(f"+ project {label}")
            lines.extend(f"+ task {label}/{task.get('name')}" for task in wanted.get("tasks", []))
            continue
        changed = [key for key in wanted if key != "tasks" and wanted[key] != current.get(key)]
        if changed:
            lines.append(f"~ project {label}: {', '.join(changed)}")
        if "webhooks" in changed:
            lines.extend(_secret_warnings(f"project {label}", project.webhooks.all(), wanted["webhooks"]))
        stored = {task["name"]: task for task in current["tasks"]}
        for task in wanted.get("tasks", []):
            before = stored.pop(task.get("name"), None)
            if before is None:
                lines.append(f"+ task {label}/{task.get('name')}")
            else:
                fields = [key for key in task if task[key] != before.get(key)]
                if fields:
                    lines.append(f"~ task {label}/{task['name']}: {', '.join(fields)}")
                if "webhooks" in fields:
                    stored_hooks = Webhook.objects.filter(task__project=project, task__name=task["name"])
                    lines.extend(_secret_warnings(f"task {label}/{task['name']}", stored_hooks, task["webhooks"]))
        lines.extend(f"- task {label}/{name}" for name in stored)
    return lines or ["No changes."]


def _secret_warnings(owner, stored, items):
    return [f"! {owner}: webhook {name} gets a new URL, so its signing secret is removed (give `secret` with the "
            f"new URL to keep signing)" for name in losing_secret(stored, items)]


def _find_project(user, wanted, must_exist=True):
    if not isinstance(wanted, dict) or not wanted.get("organization") or not wanted.get("name"):
        raise ConfigError("Each project needs an organization and a name.")
    project = Project.objects.visible_to(user).filter(organization__name=wanted["organization"],
                                                      name=wanted["name"]).first()
    return project


def _errors(where, exc):
    return ConfigError(f"{where}: {exc.detail}")


def _by_name(model, attribute, names, where, **scope):
    found = dict(model.objects.filter(**scope, **{f"{attribute}__in": names}).values_list(attribute, "pk"))
    missing = [name for name in names if name not in found]
    if missing:
        raise ConfigError(f"{where}: no {model._meta.verbose_name} named {', '.join(map(str, missing))}.")
    return [found[name] for name in names]


@transaction.atomic
def import_config(user, text):
    """Apply the file; all or nothing. Returns the plan lines of what it did."""
    done = plan(user, text)
    for wanted in _load_organizations(text):
        organization, changed = _organization_changes(user, wanted)
        if changed:
            if not access.organization_rights(user, organization).can_manage:
                raise ConfigError(f"{organization.name}: {access.refusal(access.MANAGE)}")
            connections = dict(Connection.objects.filter(organization=organization).values_list("name", "pk"))
            body = {key: wanted[key] for key in changed}
            if "settings" in body:
                body["settings"] = _settings_ids(body["settings"], connections, organization.name)
            serializer = OrganizationSerializer(organization, data=body, partial=True, context=_context(user))
            if not serializer.is_valid():
                raise _errors(organization.name, drf.ValidationError(serializer.errors))
            serializer.save()
    for wanted in _load(text):
        label = f"{wanted['organization']}/{wanted['name']}"
        organization = Organization.objects.filter(name=wanted["organization"]).first()
        if organization is None:
            raise ConfigError(f"{label}: there is no organization {wanted['organization']!r}.")
        project = _find_project(user, wanted)
        current = project_document(project, user) if project else None
        body = {key: value for key, value in wanted.items() if key not in ("tasks", "organization")}
        if current is None or any(body[key] != current.get(key) for key in body):
            body["organization"] = organization.pk
            if "owner" in body:
                body["owner"] = _by_name(get_user_model(), "username", [body["owner"]], label)[0]
            body["editor_groups"] = _by_name(Group, "name", body.get("editor_groups", []), label)
            if "settings" in body:
                body["settings"] = _settings_ids(body["settings"], dict(Connection.objects.filter(
                    organization=organization).values_list("name", "pk")), label)
            serializer = ProjectSerializer(project, data=body, partial=project is not None, context=_context(user))
            if not serializer.is_valid():
                raise _errors(label, drf.ValidationError(serializer.errors))
            project = serializer.save()
        stored = {task["name"]: task for task in (current or {}).get("tasks", [])}
        connections = dict(Connection.objects.filter(organization=organization).values_list("name", "pk"))
        links = []
        for task_doc in wanted.get("tasks", []):
            _import_task(user, project, task_doc, stored.pop(task_doc.get("name"), None), connections, links)
        Task.objects.filter(project=project, name__in=list(stored)).delete()
        for task, upstream in links:
            ids = []
            for link in upstream:
                project_name, _, task_name = str(link["upstream"]).partition("/")
                found = Task.objects.visible_to(user).filter(project__organization=organization,
                                                             project__name=project_name, name=task_name).first()
                if found is None:
                    raise ConfigError(f"{label}/{task.name}: no task {link['upstream']} to run after.")
                ids.append({"upstream": found.pk, "on": link.get("on", "success")})
            serializer = TaskSerializer(task, data={"upstream_links": ids}, partial=True, context=_context(user))
            if not serializer.is_valid():
                raise _errors(f"{label}/{task.name}", drf.ValidationError(serializer.errors))
            serializer.save()
    return done


def _import_task(user, project, doc, before, connections, links):
    where = f"{project.organization.name}/{project.name}/{doc.get('name')}"
    if not isinstance(doc, dict) or not doc.get("name"):
        raise ConfigError(f"{where}: each task needs a name.")
    upstream = doc.get("upstream_links", [])
    if before is not None and all(doc[key] == before.get(key) for key in doc):
        return
    task = Task.objects.filter(project=project, name=doc["name"]).first()

    def ids(item):
        out = {}
        for key, value in item.items():
            if key in CONNECTION_FIELDS and value:
                if value not in connections:
                    raise ConfigError(f"{where}: no connection named {value!r} in {project.organization.name}.")
                value = connections[value]
            out[key] = value
        return out

    body = ids({key: value for key, value in doc.items() if key != "upstream_links"})
    body["project"] = project.pk
    for key in ("destinations", "conditions", "notifications"):
        if key in body:
            body[key] = [ids(item) for item in body[key]]
    body["publish_to_users"] = _by_name(get_user_model(), "username", doc.get("publish_to_users", []), where)
    body["publish_to_groups"] = _by_name(Group, "name", doc.get("publish_to_groups", []), where)
    serializer = TaskSerializer(task, data=body, partial=task is not None, context=_context(user))
    if not serializer.is_valid():
        raise _errors(where, drf.ValidationError(serializer.errors))
    saved = serializer.save()
    if upstream != (before or {}).get("upstream_links", []):
        links.append((saved, upstream))
