"""Tasks as code over the API: GET export (YAML text), POST import ({"yaml": ..., "plan": true} to preview)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from api.config import ConfigError, export_config, import_config, plan
from projects.models import Project


@extend_schema(responses={(200, "application/yaml"): str},
               parameters=[OpenApiParameter("project", int, many=True, description="Only these project ids.")])
@api_view(["GET"])
def export_view(request):
    projects = Project.objects.visible_to(request.user)
    ids = request.query_params.getlist("project")
    if ids:
        if not all(value.isdigit() for value in ids):
            return Response({"project": ["project must be a whole number."]}, status=400)
        projects = projects.filter(pk__in=ids)
    return Response({"yaml": export_config(request.user, projects)})


class ImportRequest(serializers.Serializer):
    yaml = serializers.CharField()
    plan = serializers.BooleanField(default=False)


@extend_schema(request=ImportRequest, responses=inline_serializer(
    "ConfigImportResult", {"plan": serializers.BooleanField(), "changes": serializers.ListField(
        child=serializers.CharField())}))
@api_view(["POST"])
def import_view(request):
    body = ImportRequest(data=request.data)
    body.is_valid(raise_exception=True)
    preview = body.validated_data["plan"]
    try:
        lines = (plan if preview else import_config)(request.user, body.validated_data["yaml"])
    except ConfigError as exc:
        return Response({"yaml": [str(exc)]}, status=400)
    return Response({"plan": preview, "changes": lines})
