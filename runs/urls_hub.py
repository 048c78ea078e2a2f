from django.urls import path

from runs import views

urlpatterns = [
    path("", views.file_hub, name="file-hub"),
]
