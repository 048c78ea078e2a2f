"""Bulk create-or-update of tasks: up to 1,000 in one request, all or none, matched by (project, name).

Each item is validated exactly as a single write (TaskSerializer, hence the page's TaskForm). An item equal to
the stored task is not saved at all, so sending the same request twice changes nothing (no history entry, no new
updated_at) the second time.
"""
from django.db import transaction
from rest_framework import exceptions

from api.serializers import TaskSerializer
from tasks.models import Task

MAX_ITEMS = 1000


def _comparable(data):
    return {name: value for name, value in data.items() if name not in ("id", "created_at", "updated_at")}


def bulk_upsert(request, context):
    """(answer, status): the result per item, or every error as {index, field, message} (ints stay ints)."""
    items = request.data
    if not isinstance(items, list):
        raise exceptions.ValidationError({"non_field_errors": ["Send a JSON list of tasks."]})
    if not 1 <= len(items) <= MAX_ITEMS:
        raise exceptions.ValidationError({"non_field_errors": [f"Send 1 to {MAX_ITEMS} tasks, not {len(items)}."]})
    keys = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("project"), int) or not item.get("name") \
                or not 1 <= item["project"] < 2**63:
            raise exceptions.ValidationError({"errors": [{"index": index, "field": "project",
                                                         "message": "Each task needs a project id and a name."}]})
        keys.append((item["project"], str(item["name"])))
    if len(set(keys)) != len(keys):
        seen, index = set(), 0
        for index, key in enumerate(keys):
            if key in seen:
                break
            seen.add(key)
        raise exceptions.ValidationError({"errors": [{"index": index, "field": "name",
                                                     "message": "The same (project, name) appears twice."}]})
    # The tasks the request names, fetched at once, with what the representation reads.
    existing = {(task.project_id, task.name): task for task in Task.objects.visible_to(request.user).filter(
        project__in={project for project, _ in keys}, name__in={name for _, name in keys}).prefetch_related(
        "destinations", "conditions", "notifications", "upstream_links", "parameters", "publish_to_users",
        "publish_to_groups")}
    errors, results, counts = [], [], {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for index, (item, key) in enumerate(zip(items, keys)):
            instance = existing.get(key)
            serializer = TaskSerializer(instance, data=item, partial=instance is not None, context=context)
            if not serializer.is_valid():
                errors.extend(_flatten(index, serializer.errors))
                continue
            if instance is None:
                task, result = serializer.save(), "created"
            else:
                before = _comparable(TaskSerializer(instance, context=context).data)
                savepoint = transaction.savepoint()
                task = serializer.save()
                task = Task.objects.prefetch_related(
                    "destinations", "conditions", "notifications", "upstream_links", "parameters",
                    "publish_to_users", "publish_to_groups").get(pk=task.pk)
                if _comparable(TaskSerializer(task, context=context).data) == before:
                    transaction.savepoint_rollback(savepoint)
                    result = "unchanged"
                else:
                    transaction.savepoint_commit(savepoint)
                    result = "updated"
            counts[result] += 1
            results.append({"index": index, "id": task.pk, "name": task.name, "result": result})
        if errors:
            transaction.set_rollback(True)
            return {"errors": errors}, 400
    return {**counts, "tasks": results}, 200


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
