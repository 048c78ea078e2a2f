"""Every URL under /runs/."""
from django.urls import path

from runs import views, views_control, views_files, views_runs

app_name = "runs"

urlpatterns = [
    path("", views_runs.run_list, name="list"),
    path("rerun/", views_runs.run_rerun, name="rerun"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/log/", views.run_log, name="log"),
    path("<int:pk>/live/", views.run_live, name="live"),
    path("<int:pk>/cancel/", views_control.run_cancel, name="cancel"),
    path("files/<int:pk>/download/", views.file_download, name="file-download"),
    path("files/<int:pk>/resend/", views_files.file_resend, name="file-resend"),
]
