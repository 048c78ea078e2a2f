"""/ : the dashboard, the home page."""
from django.urls import path

from runs import views_runs

app_name = "dashboard"

urlpatterns = [
    path("", views_runs.home, name="home"),
    path("dashboard/run-errored/", views_runs.run_errored, name="run-errored"),
]
