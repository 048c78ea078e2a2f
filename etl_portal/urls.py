from django.contrib import admin
from django.urls import include, path

from etl_portal import health

urlpatterns = [
    path("", include("runs.urls_dashboard")),
    path("admin/", admin.site.urls),
    path("health/", health.health, name="health"),
    path("metrics", health.metrics, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("accounts.urls")),
    path("tasks/", include("tasks.urls")),
    path("runs/", include("runs.urls")),
    path("projects/", include("projects.urls")),
    path("organizations/", include("projects.urls_organizations")),
    path("files/", include("runs.urls_hub")),
    path("connections/", include("connections.urls")),
    path("alerts/", include("alerts.urls")),
    path("api/", include(("api.urls", "api"))),
    path("account/tokens/", include(("api.urls_tokens", "tokens"))),
]

handler400 = "etl_portal.web.bad_request"
handler403 = "etl_portal.web.forbidden"
handler404 = "etl_portal.web.not_found"
handler500 = "etl_portal.web.server_error"
