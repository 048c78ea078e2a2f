"""The Django admin asks projects.access, like the pages do: one mixin every ModelAdmin (and inline) uses.

Superusers see and do everything. Any other staff user keeps Django's meaning (the admin opens, with the model
permissions granted to them) and, on top, sees only the objects of organizations where they are a member, and
may add, change or delete only what their role allows (`need`: editor for projects, tasks and their parts;
admin for connections and members). Foreign-key and many-to-many choices offer only what they may use, and
custom actions act on the allowed objects of a selection and name the refused ones.
"""
from django.contrib import messages
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q

from connections.models import Connection
from projects import access
from projects.models import Organization, Project, Role, SystemJob
from runs.models import Backfill, FileDownload, Run, RunFile
from tasks.models import Task

ROLE_FOR = {access.VIEW: Role.VIEWER, access.EDIT: Role.EDITOR, access.MANAGE: Role.ADMIN}


def choices(model, user, need=access.VIEW):
    """The objects of `model` that `user` may pick in a form, or None when the layer does not scope `model`."""
    if model is Organization:
        return Organization.objects.where_role(user, ROLE_FOR.get(need, Role.EDITOR))
    if model is Project:
        return Project.objects.editable_by(user) if need != access.VIEW else Project.objects.visible_to(user)
    if model is Task:
        return Task.objects.editable_by(user) if need != access.VIEW else Task.objects.visible_to(user)
    if model is Connection:
        return Connection.objects.manageable_by(user) if need == access.MANAGE else Connection.objects.visible_to(user)
    if model is Run:
        return Run.objects.visible_to(user)
    if model is Backfill:
        return Backfill.objects.filter(project__in=Project.objects.visible_to(user).values("pk"))
    if model is RunFile:
        return RunFile.objects.filter(run__in=Run.objects.visible_to(user).values("pk"))
    if model is FileDownload:
        return FileDownload.objects.filter(run_file__in=choices(RunFile, user).values("pk"))
    if model is SystemJob:
        return SystemJob.objects.none()
    if model is get_user_model():
        return access.users_of(Organization.objects.where_role(user))
    if model is Group:
        return access.groups_of(Organization.objects.where_role(user))
    return None


class OrganizationScoped:
    """Mixin for a ModelAdmin whose objects belong to an organization.

    organization_path: the lookup from the model to its organization ("" for Organization itself); a tuple when
        the object hangs off one of several parents (a parameter belongs to a project or a task).
    need: what adding, changing and deleting need (access.EDIT or access.MANAGE); delete_need, when deleting
        needs more (access.SUPERUSER for an organization).
    superuser_only: the model is the portal's own housekeeping (system jobs): nobody else sees it.
    unscoped_fields: foreign keys left as Django offers them (a new member is someone not yet in the organization).
    """

    organization_path = None
    need = access.EDIT
    delete_need = None
    superuser_only = False
    unscoped_fields = ()

    # --- which objects -----------------------------------------------------------------------------------

    def _paths(self):
        paths = self.organization_path
        return (paths,) if isinstance(paths, str) else tuple(paths)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        user = request.user
        if user.is_superuser:
            return queryset
        if self.superuser_only:
            return queryset.none()
        organizations = Organization.objects.where_role(user).values("pk")
        where = Q()
        for path in self._paths():
            where |= Q(**{f"{path}__in" if path else "pk__in": organizations})
        return queryset.filter(where)

    def object_rights(self, request, obj):
        """The layer's rights on `obj`: of its project when it has one (editor groups count), else of its
        organization."""
        user = request.user
        if user.is_superuser:
            return access.ALL_RIGHTS
        if self.superuser_only:
            return access.NO_RIGHTS
        for path in self._paths():
            current = obj
            for step in path.split("__") if path else ():
                if isinstance(current, (Project, Task, Run, Connection)):
                    break
                current = getattr(current, step, None)
            if current is not None:
                return access.object_rights(user, current)
        return access.NO_RIGHTS

    def allows(self, request, obj, need=None):
        if (need or self.need) == access.SUPERUSER:
            return request.user.is_superuser
        return access.allows(self.object_rights(request, obj), need or self.need)

    # --- Django's permission hooks: the model permission, and then the layer ------------------------------

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            obj is None or request.user.is_superuser or self.allows(request, obj, access.VIEW))

    def has_change_permission(self, request, obj=None):
        if self.superuser_only and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj) and (obj is None or self.allows(request, obj))

    def has_delete_permission(self, request, obj=None):
        if self.superuser_only and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj) and (
            obj is None or self.allows(request, obj, self.delete_need or self.need))

    def has_add_permission(self, request, *args):
        if not super().has_add_permission(request, *args):
            return False
        if request.user.is_superuser:
            return True
        if self.superuser_only:
            return False
        return self._add_scope(request)

    def _add_scope(self, request):
        """Whether the user may add anywhere: the parent the new object hangs off offers at least one choice."""
        path = self._paths()[0]
        if not path:  # a new organization has no admin yet to allow it
            return False
        field = self.model._meta.get_field(path.split("__")[0])
        # Every admin page asks this of every registered model (the sidebar's "Add" links) and of every related
        # field's "+" button; most share a parent (project, task, connection), so one answer per parent and need
        # serves the whole request.
        answers = request.__dict__.setdefault("_etl_add_scope", {})
        key = (field.related_model, self.need)
        if key not in answers:
            if field.related_model is Organization:  # the user's own roles answer it
                answers[key] = access.allowed_in_some_organization(request.user, self.need)
            else:
                allowed = choices(field.related_model, request.user, self.need)
                answers[key] = allowed is None or allowed.exists()
        return answers[key]

    def get_list_filter(self, request):
        """A filter by organization, project or connection lists only those of the objects shown: Django's
        default would list every organization's names."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [(item, RelatedOnlyFieldListFilter) if isinstance(item, str)
                and get_fields_from_path(self.model, item)[-1].is_relation else item for item in filters]

    # --- what forms offer ----------------------------------------------------------------------------------

    def _owner_field(self):
        path = self._paths()[0]
        return path.split("__")[0] if path else None

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name not in self.unscoped_fields:
            need = self.need if db_field.name == self._owner_field() else access.VIEW
            allowed = choices(db_field.related_model, request.user, need)
            if allowed is not None:
                kwargs["queryset"] = allowed
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name not in self.unscoped_fields:
            allowed = choices(db_field.related_model, request.user)
            if allowed is not None:
                kwargs["queryset"] = allowed
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, **kwargs):
        """The form knows its user, so its clean() can ask the layer (code permission, for one)."""
        form = super().get_form(request, obj, **kwargs)
        user = request.user

        def __init__(self, *args, **kw):
            form.__init__(self, *args, **kw)
            self.user = user

        return type(form.__name__, (form,), {"__init__": __init__})

    # --- custom actions ------------------------------------------------------------------------------------

    def allowed(self, request, queryset, need=None):
        """The selected objects the layer allows `need` on; the refused ones are named in an error message and
        never acted on."""
        allowed, refused = [], []
        for obj in queryset:
            (allowed if self.allows(request, obj, need) else refused).append(obj)
        if refused:
            self.message_user(request, "Not allowed: " + ", ".join(str(obj) for obj in refused), messages.ERROR)
        return allowed


class ParentScopedInline:
    """Mixin for an inline: its rows may be changed when its parent object may, by the parent admin's rule."""

    unscoped_fields = ()

    def _parent_admin(self):
        return self.admin_site._registry[self.parent_model]

    def _parent_allows(self, request, obj):
        if request.user.is_superuser or obj is None:
            return True
        return self._parent_admin().allows(request, obj)

    def has_add_permission(self, request, obj):
        return super().has_add_permission(request, obj) and self._parent_allows(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._parent_allows(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._parent_allows(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name not in self.unscoped_fields:
            allowed = choices(db_field.related_model, request.user)
            if allowed is not None:
                kwargs["queryset"] = allowed
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
