"""Every URL under /projects/."""
from django.urls import path

from audit import views as history_views
from projects import views, views_levels
from runs import views_backfill, views_control

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_new, name="new"),
    path("cron-preview/", views.cron_preview, name="cron-preview"),
    path("<int:pk>/", views.project_detail, name="detail"),
    path("<int:pk>/edit/", views.project_edit, name="edit"),
    path("<int:pk>/run/", views.project_run, name="run"),
    path("<int:pk>/set-enabled/", views.project_set_enabled, name="set-enabled"),
    path("<int:pk>/duplicate/", views.project_duplicate, name="duplicate"),
    path("<int:pk>/settings/", views_levels.project_settings, name="settings"),
    path("<int:pk>/backfill/", views_backfill.project_backfill, name="backfill"),
    path("<int:pk>/reschedule/", views_control.project_reschedule, name="reschedule"),
    path("<int:pk>/history/", history_views.project_history, name="history"),
]
