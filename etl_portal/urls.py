from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from api import tokens as api_tokens

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="task-list", permanent=False)),
    path("admin/", admin.site.urls),
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
    path("api/", include("api.urls")),
    path("account/tokens/", api_tokens.token_list, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", api_tokens.token_revoke, name="api-token-revoke"),
]

handler400 = "etl_portal.web.bad_request"
handler403 = "etl_portal.web.forbidden"
