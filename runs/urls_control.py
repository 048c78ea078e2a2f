from django.urls import path

from runs import views_control

urlpatterns = [
    path("tasks/<int:pk>/reschedule/", views_control.task_reschedule, name="task-reschedule"),
    path("tasks/<int:pk>/cancel-retry/", views_control.task_cancel_retry, name="task-cancel-retry"),
    path("projects/<int:pk>/reschedule/", views_control.project_reschedule, name="project-reschedule"),
    path("runs/<int:pk>/cancel/", views_control.run_cancel, name="run-cancel"),
]
