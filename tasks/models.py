from django.db import models
from django.db.models import Q


class TaskQuerySet(models.QuerySet):
    def visible_to(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(project__owner=user) | Q(project__organization__members=user)).distinct()

    def editable_by(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(project__owner=user) | Q(project__editor_groups__in=user.groups.all())).distinct()


class Task(models.Model):
    class SourceKind(models.TextChoices):
        QUERY = "query", "Database query"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"

    class Quoting(models.TextChoices):
        MINIMAL = "minimal", "Minimal (only when needed)"
        ALL = "all", "All fields"
        NONNUMERIC = "nonnumeric", "Non-numeric fields"
        NONE = "none", "None (escape with backslash)"

    class LineTerminator(models.TextChoices):
        LF = "lf", "LF (Unix)"
        CRLF = "crlf", "CRLF (Windows)"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8", "UTF-8"
        UTF8_BOM = "utf-8-sig", "UTF-8 with BOM"
        CP1252 = "cp1252", "Windows-1252"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tasks")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    run_rank = models.PositiveIntegerField(default=1, help_text="Order within a series project; lower runs first.")
    enabled = models.BooleanField(default=True)

    source_kind = models.CharField(max_length=10, choices=SourceKind.choices, default=SourceKind.QUERY)
    source_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="source_tasks"
    )
    query = models.TextField(blank=True)
    include_headers = models.BooleanField(default=True)

    file_name = models.CharField(max_length=255, blank=True, help_text="Name of the output file.")
    file_format = models.CharField(max_length=10, choices=FileFormat.choices, default=FileFormat.CSV)
    csv_delimiter = models.CharField(max_length=5, default=",")
    csv_quoting = models.CharField(max_length=12, choices=Quoting.choices, default=Quoting.MINIMAL)
    line_terminator = models.CharField(max_length=4, choices=LineTerminator.choices, default=LineTerminator.LF)
    encoding = models.CharField(max_length=10, choices=Encoding.choices, default=Encoding.UTF8)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["project__name", "run_rank", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="task_name_per_project")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        from django.urls import reverse

        return reverse("task-detail", args=[self.pk])


class Destination(models.Model):
    """One place a task's output is delivered to; a task may have any number."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="destinations")
    connection = models.ForeignKey("connections.Connection", on_delete=models.PROTECT, related_name="destinations")
    folder = models.CharField(max_length=1024, blank=True, help_text="Folder under the connection's base folder.")
    overwrite = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return f"{self.connection.name}:{self.folder or '/'}"
