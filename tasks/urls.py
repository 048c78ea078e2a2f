from django.urls import path

from tasks import views

urlpatterns = [
    path("", views.task_list, name="task-list"),
    path("<int:pk>/", views.task_detail, name="task-detail"),
    path("<int:pk>/run/", views.task_run, name="task-run"),
]
