"""Every URL under /runs/."""
from django.urls import path

from runs import views, views_backfill, views_control, views_files, views_runs

app_name = "runs"

urlpatterns = [
    path("", views_runs.run_list, name="list"),
    path("rerun/", views_runs.run_rerun, name="rerun"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/log/", views.run_log, name="log"),
    path("<int:pk>/live/", views.run_live, name="live"),
    path("<int:pk>/manifest.json", views.run_manifest, name="manifest"),
    path("<int:pk>/cancel/", views_control.run_cancel, name="cancel"),
    path("backfills/<int:pk>/", views_backfill.backfill_detail, name="backfill"),
    path("backfills/<int:pk>/cancel/", views_backfill.backfill_cancel, name="backfill-cancel"),
    path("<int:pk>/accept-drift/", views_control.run_accept_drift, name="accept-drift"),
    path("dry-runs/<int:pk>/", views_files.dry_run_detail, name="dry-run"),
    path("files/<int:pk>/download/", views.file_download, name="file-download"),
    path("files/<int:pk>/resend/", views_files.file_resend, name="file-resend"),
]
