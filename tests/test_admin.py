"""The Django admin for operators: every model's list page answers, and the custom actions work."""
import pytest
from django.apps import apps
from django.contrib import admin

from projects.models import Parameter
from tasks.models import Task

pytestmark = pytest.mark.django_db

APPS = ("projects", "connections", "tasks", "runs", "alerts")


def test_every_model_has_a_working_admin_list(client, staff):
    client.force_login(staff)
    models = [model for model in apps.get_models() if model._meta.app_label in APPS]
    for model in models:
        assert model in admin.site._registry, model.__name__
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_duplicate_and_disable_actions(client, staff, project):
    task = Task.objects.create(project=project, name="Feed")
    Parameter.objects.create(task=task, key="token", value="Adm1n-Secret", sensitive=True)
    client.force_login(staff)
    client.post("/admin/tasks/task/", {"action": "duplicate", "_selected_action": [task.pk]})
    copy = Task.objects.get(name="Feed (copy)")
    assert not copy.enabled and copy.parameters.get().value == "Adm1n-Secret"
    client.post("/admin/tasks/task/", {"action": "disable", "_selected_action": [task.pk]})
    assert not Task.objects.get(pk=task.pk).enabled
    assert "Adm1n-Secret" not in client.get("/admin/projects/parameter/").content.decode()
