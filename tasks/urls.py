from django.urls import path

from tasks import views

urlpatterns = [
    path("", views.task_list, name="task-list"),
    path("mine/", views.my_tasks, name="task-mine"),
    path("new/", views.task_new, name="task-new"),
    path("bulk/", views.task_bulk, name="task-bulk"),
    path("try/", views.task_try, name="task-try"),
    path("<int:pk>/", views.task_detail, name="task-detail"),
    path("<int:pk>/edit/", views.task_edit, name="task-edit"),
    path("<int:pk>/delete/", views.task_delete, name="task-delete"),
    path("<int:pk>/duplicate/", views.task_duplicate, name="task-duplicate"),
    path("<int:pk>/toggle/", views.task_toggle, name="task-toggle"),
    path("<int:pk>/run/", views.task_run, name="task-run"),
]
