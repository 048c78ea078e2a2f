"""/api/v1/ (the resources), /api/schema/ (OpenAPI 3), /api/docs/ (Swagger UI) and /api/redoc/, served from the
drf-spectacular-sidecar package. API views answer 401/403 JSON themselves: LoginRequiredMiddleware's login
redirect is switched off for them (DRF authenticates, by token or session)."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from api import views, views_config

router = DefaultRouter()
router.register("organizations", views.OrganizationViewSet, basename="api-organization")
router.register("projects", views.ProjectViewSet, basename="api-project")
router.register("tasks", views.TaskViewSet, basename="api-task")
router.register("connections", views.ConnectionViewSet, basename="api-connection")
router.register("runs", views.RunViewSet, basename="api-run")
router.register("files", views.RunFileViewSet, basename="api-file")
router.register("dry-runs", views.DryRunViewSet, basename="api-dry-run")


def _open_to_drf(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            _open_to_drf(pattern.url_patterns)
        else:
            pattern.callback.login_required = False  # what django's login_not_required sets
    return patterns


urlpatterns = _open_to_drf([
    path("v1/", include(router.urls)),
    path("v1/config/export/", views_config.export_view, name="api-config-export"),
    path("v1/config/import/", views_config.import_view, name="api-config-import"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:api-schema"), name="api-redoc"),
])
