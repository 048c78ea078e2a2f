"""Bulk create-or-update of tasks: up to 1,000 in one request, all or none, matched by (project, name).

Each item is validated exactly as a single write (TaskSerializer, hence the page's TaskForm, with the same rights
checks), but the pickers' choices, projects, parameters and editor groups are read once for the request
(tasks.forms.PickerCache) and one serializer is reused for every item. New tasks and their nested lists are then
inserted in batches with their history records (simple-history's bulk_create_with_history); updates are saved one
by one. An item equal to the stored task is not saved at all, so sending the same request twice changes nothing
(no history entry, no new updated_at) the second time.
"""
from django.db import IntegrityError, transaction
from rest_framework import exceptions
from simple_history.utils import bulk_create_with_history

from alerts.models import Webhook
from api.serializers import NESTED, TaskSerializer, save_task
from api.webhooks import built
from projects.models import Parameter
from tasks.pickers import PickerCache
from tasks.models import Task

MAX_ITEMS = 1000
PREFETCH = ("destinations", "conditions", "notifications", "upstream_links", "parameters", "webhooks",
            "publish_to_users", "publish_to_groups")


def _comparable(data):
    return {name: value for name, value in data.items() if name not in ("id", "created_at", "updated_at")}


def _keys(items):
    """(project id, name) of each item; a 400 for a malformed item or a key given twice."""
    if not isinstance(items, list):
        raise exceptions.ValidationError({"non_field_errors": ["Send a JSON list of tasks."]})
    if not 1 <= len(items) <= MAX_ITEMS:
        raise exceptions.ValidationError({"non_field_errors": [f"Send 1 to {MAX_ITEMS} tasks, not {len(items)}."]})
    keys, seen = [], set()
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("project"), int) or not item.get("name") \
                or not 1 <= item["project"] < 2**63:
            raise exceptions.ValidationError({"errors": [{"index": index, "field": "project",
                                                         "message": "Each task needs a project id and a name."}]})
        key = (item["project"], str(item["name"]))
        if key in seen:
            raise exceptions.ValidationError({"errors": [{"index": index, "field": "name",
                                                         "message": "The same (project, name) appears twice."}]})
        seen.add(key)
        keys.append(key)
    return keys


def bulk_upsert(request, context):
    """(answer, status): the result per item, or every error as {index, field, message} (ints stay ints)."""
    items = request.data
    keys = _keys(items)
    # The tasks the request names, fetched at once, with what the representation reads. A project a task may be
    # written to is one the user sees, so a key not found here is free (checked again by the database).
    existing = {(task.project_id, task.name): task for task in Task.objects.visible_to(request.user).filter(
        project__in={project for project, _ in keys}, name__in={name for _, name in keys}).prefetch_related(
        *PREFETCH)}
    pickers = PickerCache(request.user, names_in_use={key: task.pk for key, task in existing.items()})
    checker = TaskSerializer(context={**context, "pickers": pickers})
    checker.validators = []  # (project, name): the lookup above and the form (names_in_use) check it
    errors, creates, updates = [], [], []
    for index, (item, key) in enumerate(zip(items, keys)):
        instance = existing.get(key)
        checker.instance, checker.partial = instance, instance is not None
        # Read before validating: the form writes the new values into the instance as it checks them, so a
        # representation taken later already shows them (every change was then reported unchanged and undone).
        before = _comparable(checker.to_representation(instance)) if instance is not None else None
        try:
            attrs = checker.run_validation(item)
        except exceptions.ValidationError as exc:
            errors.extend(_flatten(index, exc.detail))
            continue
        if instance is None:
            creates.append((index, instance, attrs))
        else:
            updates.append((index, instance, attrs, before))
    if errors:
        return {"errors": errors}, 400
    results, saving = {}, None
    try:
        with transaction.atomic():
            for saving, instance, attrs, before in updates:
                results[saving] = _update(checker, instance, attrs, before)
            saving = None
            for index, task in zip([index for index, _, _ in creates],
                                   _create([attrs for _, _, attrs in creates], request.user)):
                results[index] = (task, "created")
    except IntegrityError:  # another request created one of these names meanwhile
        raise exceptions.ValidationError({"non_field_errors": [
            "Some of these tasks were changed by someone else meanwhile; nothing was saved. Send the request "
            "again."]}) from None
    except exceptions.ValidationError as exc:  # a dependency cycle, found on saving an update; all undone
        return {"errors": _flatten(saving or 0, exc.detail)}, 400
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    answer = []
    for index in sorted(results):
        task, result = results[index]
        counts[result] += 1
        answer.append({"index": index, "id": task.pk, "name": task.name, "result": result})
    return {**counts, "tasks": answer}, 200


def _update(checker, instance, attrs, before):
    """Save one update; undo it and call it unchanged when the task reads as it did `before` (its representation
    before validation) and no secret changed (a sensitive parameter's value, a webhook's secret: no representation
    shows them)."""
    savepoint = transaction.savepoint()
    task = save_task(checker, attrs)
    task = Task.objects.prefetch_related(*PREFETCH).get(pk=task.pk)
    if not checker.secret_changed and _comparable(checker.to_representation(task)) == before:
        transaction.savepoint_rollback(savepoint)
        return instance, "unchanged"
    transaction.savepoint_commit(savepoint)
    return task, "updated"


def _create(validated, user):
    """Insert the new tasks, then their nested lists and parameters, in batches, each with its history records.

    A new task cannot close a dependency cycle (nothing runs after it yet), so find_cycle is not needed. Its
    file-hub people and groups, rarely given, are saved per task by the form (the m2m history needs the row)."""
    if not validated:
        return []
    forms = [attrs["_form"] for attrs in validated]
    tasks = bulk_create_with_history([form.save(commit=False) for form in forms], Task, default_user=user)
    for form in forms:
        if form.cleaned_data.get("publish_to_users") or form.cleaned_data.get("publish_to_groups"):
            form.save_m2m()
    for name, serializer in NESTED.items():
        model = serializer.Meta.model
        owner = "downstream" if name == "upstream_links" else "task"
        rows = [model(**{owner: task}, **item) for task, attrs in zip(tasks, validated)
                for item in attrs.get(name) or ()]
        if rows:
            bulk_create_with_history(rows, model, default_user=user)
    parameters = [Parameter(task=task, key=item["key"], value=item.get("value", ""),
                            sensitive=item.get("sensitive", False))
                  for task, attrs in zip(tasks, validated) for item in attrs.get("parameters") or ()]
    if parameters:
        bulk_create_with_history(parameters, Parameter, default_user=user)
    webhooks = [built(task, item) for task, attrs in zip(tasks, validated) for item in attrs.get("webhooks") or ()]
    if webhooks:
        bulk_create_with_history(webhooks, Webhook, default_user=user)
    return tasks


def _flatten(index, errors, prefix=""):
    """DRF's nested error dict as a flat list of {index, field, message} (field like "destinations.0.folder")."""
    flat = []
    if isinstance(errors, dict):
        for name, value in errors.items():
            flat.extend(_flatten(index, value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        flat.extend({"index": index, "field": prefix or "non_field_errors", "message": str(e)} for e in errors)
    elif isinstance(errors, list):
        for position, value in enumerate(errors):
            if value:
                flat.extend(_flatten(index, value, f"{prefix}.{position}"))
    else:
        flat.append({"index": index, "field": prefix or "non_field_errors", "message": str(errors)})
    return flat
