from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from etl_portal import health

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="task-list", permanent=False)),
    path("admin/", admin.site.urls),
    path("health/", health.health, name="health"),
    path("metrics", health.metrics, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("audit.urls")),  # /tasks/<pk>/history/ and /projects/<pk>/history/
    path("tasks/", include("tasks.urls")),
    path("runs/", include("runs.urls")),
    path("projects/", include("projects.urls")),
    path("organizations/", include("projects.urls_organizations")),
    path("files/", include("runs.urls_hub")),
    path("connections/", include("connections.urls")),
    path("", include("runs.urls_files")),
    path("", include("runs.urls_control")),
]

handler400 = "etl_portal.web.bad_request"
handler403 = "etl_portal.web.forbidden"
