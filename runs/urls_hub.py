"""/files/: the file hub (files published to the user)."""
from django.urls import path

from runs import views

app_name = "files"

urlpatterns = [
    path("", views.file_hub, name="hub"),
]
