"""Every URL under /alerts/: the webhooks of tasks, projects and organizations."""
from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("tasks/<int:pk>/webhooks/new/", views.task_webhook_new, name="task-webhook-new"),
    path("projects/<int:pk>/webhooks/new/", views.project_webhook_new, name="project-webhook-new"),
    path("organizations/<int:pk>/webhooks/new/", views.organization_webhook_new, name="organization-webhook-new"),
    path("webhooks/<int:pk>/edit/", views.webhook_edit, name="webhook-edit"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:pk>/test/", views.webhook_test, name="webhook-test"),
]
