"""Task page actions on output files; included at the site root by etl_portal/urls.py."""
from django.urls import path

from runs import views_files

urlpatterns = [
    path("runs/files/<int:pk>/resend/", views_files.file_resend, name="file-resend"),
    path("tasks/<int:pk>/preview/", views_files.task_preview, name="task-preview"),
]
