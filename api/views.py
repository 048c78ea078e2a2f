"""The REST API's views. Every object is fetched through projects.access (404 when the user may not see it, 403
when they may not do the action), so the API and the pages share one permission layer."""
from django.http import FileResponse, Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api import serializers as s
from connections.protocols import ConnectorError
from connections.models import Connection
from projects import access, triggers
from projects.models import Organization, Project, Role
from runs import delivery, dry_run
from runs.models import DryRun, FileDownload, Run, RunFile
from runs.orchestration import cancel_run
from runs.queueing import enqueue_run
from tasks.models import Task


class AccessMixin:
    """get_object through projects.access: `getter(user, pk, need)` with the need of the action."""

    getter = None
    needs = {"retrieve": access.VIEW, "update": access.EDIT, "partial_update": access.EDIT,
             "destroy": access.EDIT}

    def get_object(self):
        need = self.needs.get(self.action, access.VIEW)
        obj = type(self).getter(self.request.user, self.kwargs["pk"], need)
        return obj


class OrganizationViewSet(AccessMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Organizations; their admins change their shared settings, parameters and webhooks (PATCH)."""

    serializer_class = s.OrganizationSerializer
    getter = staticmethod(access.get_organization)
    needs = {**AccessMixin.needs, "update": access.MANAGE, "partial_update": access.MANAGE}
    filterset_fields = {"name": ["exact", "icontains"]}
    ordering_fields = ("name", "id")

    def get_queryset(self):
        return (Organization.objects.where_role(self.request.user).prefetch_related("parameters", "webhooks")
                .order_by("name"))


class ProjectViewSet(AccessMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ProjectSerializer
    getter = staticmethod(access.get_project)
    filterset_fields = {"organization": ["exact"], "name": ["exact", "icontains"], "enabled": ["exact"],
                        "mode": ["exact"]}
    ordering_fields = ("name", "id", "created_at")

    def get_queryset(self):
        return (Project.objects.visible_to(self.request.user).select_related("organization")
                .prefetch_related("triggers", "parameters", "editor_groups", "webhooks").order_by("name", "id"))

    def create(self, request, *args, **kwargs):
        if not Organization.objects.where_role(request.user, Role.EDITOR).exists():
            raise exceptions.PermissionDenied("Creating a project needs the editor role in an organization.")
        return super().create(request, *args, **kwargs)

    @extend_schema(responses=inline_serializer("NextFireTimes", {
        "trigger": serializers.IntegerField(), "times": serializers.ListField(child=serializers.DateTimeField())},
        many=True), parameters=[OpenApiParameter("count", int, description="How many times per trigger (1-100).")])
    @action(detail=True, methods=["get"], url_path="next-fire-times")
    def next_fire_times(self, request, pk=None):
        """When each enabled trigger of the project fires next."""
        project = self.get_object()
        count = _int_param(request, "count", 10, 1, 100)
        now = timezone.now()
        return Response([{"trigger": trigger.pk, "times": triggers.next_fire_times(trigger, now, count)}
                         for trigger in project.triggers.filter(enabled=True)])


def _int_param(request, name, default, low, high):
    raw = request.query_params.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise exceptions.ValidationError({name: [f"{name} must be a whole number."]}) from None
    if not low <= value <= high:
        raise exceptions.ValidationError({name: [f"{name} must be between {low} and {high}."]})
    return value


class TaskViewSet(AccessMixin, viewsets.ModelViewSet):
    serializer_class = s.TaskSerializer
    getter = staticmethod(access.get_task)
    filterset_fields = {"project": ["exact"], "project__organization": ["exact"], "name": ["exact", "icontains"],
                        "enabled": ["exact"], "source_kind": ["exact"], "source_connection": ["exact"]}
    ordering_fields = ("name", "id", "run_rank", "priority", "created_at", "updated_at")

    def get_queryset(self):
        return (Task.objects.visible_to(self.request.user).select_related("project__organization")
                .prefetch_related("destinations", "conditions", "notifications", "upstream_links", "parameters",
                                  "webhooks", "publish_to_users", "publish_to_groups")
                .order_by("project__name", "name", "id"))

    def create(self, request, *args, **kwargs):
        if not Project.objects.editable_by(request.user).exists():
            raise exceptions.PermissionDenied("Creating a task needs the editor role in an organization with a "
                                              "project.")
        return super().create(request, *args, **kwargs)

    @extend_schema(request=s.RunStartSerializer, responses={201: s.RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Start the task now, or as of a date (the date its parameters treat as today)."""
        task = access.get_task(request.user, pk, access.EDIT)
        start = s.RunStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        run = enqueue_run(task, Run.Trigger.MANUAL, request.user, scheduled_for=start.validated_data.get("as_of"))
        return Response(s.RunSerializer(run, context=self.get_serializer_context()).data, status=201)

    @extend_schema(request=s.RunStartSerializer, responses={202: s.DryRunSerializer})
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request, pk=None):
        """Everything a run as of a date would do except sending (runs/dry_run.py). A worker makes the report:
        follow the answer's id at /api/v1/dry-runs/<id>/ until its status is done or failed."""
        task = access.get_task(request.user, pk, access.EDIT)
        start = s.RunStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        made = dry_run.request(task, request.user, start.validated_data.get("as_of"))
        return Response(s.DryRunSerializer(made, context=self.get_serializer_context()).data, status=202)

    @extend_schema(request=s.TaskSerializer(many=True), responses={200: s.BulkResultSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Create or update up to 1,000 tasks, all or none, matched by (project, name)."""
        from api.bulk import bulk_upsert

        answer, status_code = bulk_upsert(request, self.get_serializer_context())
        return Response(answer, status=status_code)


class ConnectionViewSet(AccessMixin, viewsets.ModelViewSet):
    serializer_class = s.ConnectionSerializer
    getter = staticmethod(access.get_connection)
    needs = {**AccessMixin.needs, "update": access.MANAGE, "partial_update": access.MANAGE,
             "destroy": access.MANAGE}
    filterset_fields = {"organization": ["exact"], "name": ["exact", "icontains"], "kind": ["exact"]}
    ordering_fields = ("name", "id", "kind")

    def get_queryset(self):
        return Connection.objects.visible_to(self.request.user).prefetch_related("maintenance_windows") \
            .order_by("name", "id")

    def create(self, request, *args, **kwargs):
        if not Organization.objects.where_role(request.user, Role.ADMIN).exists():
            raise exceptions.PermissionDenied(access.refusal(access.MANAGE))
        return super().create(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        connection = self.get_object()
        users = list(connection.users()[:20])
        if users:
            return Response({"detail": "In use by these tasks: " + ", ".join(t.name for t in users)},
                            status=status.HTTP_409_CONFLICT)
        connection.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunViewSet(AccessMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.RunSerializer
    getter = staticmethod(access.get_run)
    filterset_fields = {"task": ["exact"], "task__project": ["exact"], "status": ["exact"],
                        "created_at": ["gte", "lte"]}
    ordering_fields = ("id", "created_at", "started_at", "finished_at")

    def get_queryset(self):
        return Run.objects.visible_to(self.request.user).select_related("task").order_by("-id")

    @extend_schema(request=None, responses={200: inline_serializer("CancelResult", {"detail": serializers.CharField()})})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = access.get_run(request.user, pk, access.EDIT)
        return Response({"detail": cancel_run(run, request.user)})

    @extend_schema(responses=s.LogLineSerializer(many=True),
                   parameters=[OpenApiParameter("after", int, description="Only lines after this line id.")])
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        """The run's log lines after a given line (for following a run)."""
        run = access.get_run(request.user, pk)
        after = _int_param(request, "after", 0, 0, 2**62)
        lines = run.log_lines.filter(id__gt=after).order_by("id")[:5000]
        return Response(s.LogLineSerializer(lines, many=True).data)


class DryRunViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.DryRunSerializer
    filterset_fields = {"task": ["exact"], "status": ["exact"]}
    ordering_fields = ("id", "created_at")

    def get_queryset(self):
        return (DryRun.objects.filter(task__in=Task.objects.visible_to(self.request.user).values("pk"))
                .select_related("task").order_by("-id"))


class RunFileViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.RunFileSerializer
    filterset_fields = {"run": ["exact"], "run__task": ["exact"], "created_at": ["gte", "lte"]}
    ordering_fields = ("id", "created_at", "size")

    def get_queryset(self):
        return RunFile.objects.filter(run__task__in=Task.objects.visible_to(self.request.user).values("pk")
                                      ).order_by("-id")

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        run_file = self.get_object()
        if not run_file.is_available:
            raise Http404("This file is no longer kept (retention period passed).")
        FileDownload.objects.create(run_file=run_file, user=request.user)
        return FileResponse(open(run_file.stored_path, "rb"), as_attachment=True, filename=run_file.display_name)

    @extend_schema(request=None, responses={200: inline_serializer("ResendResult", {
        "ok": serializers.BooleanField(), "results": serializers.ListField(child=serializers.DictField())})})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        run_file = self.get_object()
        access.get_task(request.user, run_file.run.task_id, access.EDIT)
        try:
            results = delivery.resend(run_file, request.user)
        except ConnectorError as exc:
            return Response({"ok": False, "detail": exc.message}, status=400)
        return Response({"ok": all(result["ok"] for result in results), "results": results})
