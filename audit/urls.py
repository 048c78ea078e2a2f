from django.urls import path

from audit import views

urlpatterns = [
    path("tasks/<int:pk>/history/", views.task_history, name="task-history"),
    path("projects/<int:pk>/history/", views.project_history, name="project-history"),
]
