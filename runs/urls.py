from django.urls import path

from runs import views

urlpatterns = [
    path("<int:pk>/", views.run_detail, name="run-detail"),
    path("<int:pk>/log/", views.run_log, name="run-log"),
    path("<int:pk>/live/", views.run_live, name="run-live"),
    path("files/<int:pk>/download/", views.file_download, name="file-download"),
]
