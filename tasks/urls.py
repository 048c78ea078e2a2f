"""Every URL under /tasks/ (the task pages, and the task's schedule controls, preview and history whose views
live with the runs and the audit app)."""
from django.urls import path

from audit import views as history_views
from runs import views_backfill, views_control, views_files
from tasks import views, views_pick

app_name = "tasks"

urlpatterns = [
    path("", views.task_list, name="list"),
    path("mine/", views.my_tasks, name="mine"),
    path("new/", views.task_new, name="new"),
    path("bulk/", views.task_bulk, name="bulk"),
    path("try/", views.task_try, name="try"),
    path("pick/task/", views_pick.pick_task, name="pick-task"),
    path("pick/project/", views_pick.pick_project, name="pick-project"),
    path("pick/person/", views_pick.pick_person, name="pick-person"),
    path("<int:pk>/", views.task_detail, name="detail"),
    path("<int:pk>/edit/", views.task_edit, name="edit"),
    path("<int:pk>/delete/", views.task_delete, name="delete"),
    path("<int:pk>/duplicate/", views.task_duplicate, name="duplicate"),
    path("<int:pk>/toggle/", views.task_toggle, name="toggle"),
    path("<int:pk>/use-inherited/", views.task_use_inherited, name="inherit"),
    path("<int:pk>/run/", views.task_run, name="run"),
    path("<int:pk>/backfill/", views_backfill.task_backfill, name="backfill"),
    path("<int:pk>/reschedule/", views_control.task_reschedule, name="reschedule"),
    path("<int:pk>/cancel-retry/", views_control.task_cancel_retry, name="cancel-retry"),
    path("<int:pk>/preview/", views_files.task_preview, name="preview"),
    path("<int:pk>/dry-run/", views_files.task_dry_run, name="dry-run"),
    path("<int:pk>/history/", history_views.task_history, name="history"),
]
