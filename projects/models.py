from django.conf import settings
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    """Everything (connections, projects) belongs to one organization; members see its work."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="organizations")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(organization__members=user)).distinct()

    def editable_by(self, user):
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(editor_groups__in=user.groups.all())).distinct()


class Project(models.Model):
    class Mode(models.TextChoices):
        SERIES = "series", "Series (one after another, by run rank)"
        PARALLEL = "parallel", "Parallel"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    editor_groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="editable_projects",
        help_text="Members of these groups may change and run the project's tasks.",
    )
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.SERIES)
    time_zone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="project_name_per_org")]

    def __str__(self):
        return self.name
