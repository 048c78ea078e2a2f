"""The one permission layer: what a user may do with an organization's projects, tasks, runs and connections.

Pages, admin actions, management commands and (later) the API all ask here; nothing else decides. A user's
rights come from their role in the object's organization (`Membership`):

- *viewer* sees the organization's projects, tasks, runs, logs and files;
- *editor* also creates, changes and runs projects and tasks (a project's editor groups make a member of the
  organization an editor of that project only);
- *admin* also manages connections, members and roles;
- *may write code* (granted per member by an admin, with the editor or admin role) is needed to write what
  runs on the portal's server: scripts, SSH commands, SQLite and local-folder connections.

Superusers may do everything; staff keep only Django's meaning (they may open the admin, where they see what
their roles allow). Something the user may not see is "not found" (404), so its existence is not revealed;
something they see but may not change is "forbidden" (403).
"""
from dataclasses import dataclass, replace

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404

from alerts.models import Webhook
from connections.models import Connection
from projects.models import Membership, Organization, Project, Role, at_least
from runs.models import Backfill, Run
from tasks.models import Task


@dataclass(frozen=True)
class Rights:
    """What one user may do with one object; views and templates read these flags, never roles."""

    can_view: bool = False
    can_edit: bool = False
    can_manage: bool = False
    can_write_code: bool = False
    role: str = ""


NO_RIGHTS = Rights()
ALL_RIGHTS = Rights(True, True, True, True, role="superuser")

VIEW, EDIT, MANAGE, CODE = "view", "edit", "manage", "code"
_REFUSALS = {
    EDIT: "You may look at this but not change it: that needs the editor role in its organization.",
    MANAGE: "Only an admin of this organization may do that.",
    CODE: "Writing code that runs on the portal's server needs the \"may write code\" permission, which an "
          "admin of the organization grants.",
}


def refusal(need):
    """The sentence a page shows when a user lacks `need`."""
    return _REFUSALS[need]


def users_of(organizations, role=Role.VIEWER):
    """Members (with `role` or higher) of these organizations: what user pickers offer."""
    return get_user_model().objects.filter(pk__in=Membership.objects.filter(
        organization__in=organizations.values("pk"), role__in=at_least(role)).values("user_id")
    ).order_by("username")


def groups_of(organizations):
    """Groups with at least one member in these organizations: what group pickers offer.

    Django's groups belong to no organization; a group is offered where it has members, so a picker never
    lists the groups of an organization the user has nothing to do with."""
    members = Membership.objects.filter(organization__in=organizations.values("pk")).values("user_id")
    return Group.objects.filter(user__in=members).distinct().order_by("name")


def _memberships(user):
    """The user's memberships by organization id, read once per user object (so once per request)."""
    cached = getattr(user, "_etl_memberships", None)
    if cached is None:
        cached = {m.organization_id: m for m in Membership.objects.filter(user=user)} if user.pk else {}
        user._etl_memberships = cached
    return cached


def _group_ids(user):
    cached = getattr(user, "_etl_group_ids", None)
    if cached is None:
        cached = set(user.groups.values_list("pk", flat=True)) if user.pk else set()
        user._etl_group_ids = cached
    return cached


def forget_cached_rights(user):
    """After a role change in the same request (the members page), read the memberships again."""
    for name in ("_etl_memberships", "_etl_group_ids"):
        if hasattr(user, name):
            delattr(user, name)


def _rights_from(membership, elevated=False):
    if membership is None:
        return NO_RIGHTS
    role = membership.role
    if elevated and role == Role.VIEWER:
        role = Role.EDITOR
    can_edit = role in (Role.EDITOR, Role.ADMIN)
    return Rights(can_view=True, can_edit=can_edit, can_manage=role == Role.ADMIN,
                  can_write_code=can_edit and membership.can_write_code, role=role)


def organization_rights(user, organization):
    if user is None or not user.is_authenticated:
        return NO_RIGHTS
    if user.is_superuser:
        return ALL_RIGHTS
    organization_id = getattr(organization, "pk", organization)
    return _rights_from(_memberships(user).get(organization_id))


def allowed_in_some_organization(user, need):
    """Whether `user`'s role allows `need` in at least one organization, from the memberships already read for
    the request (no query)."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_superuser or any(allows(_rights_from(membership), need)
                                    for membership in _memberships(user).values())


def project_rights(user, project):
    if user is None or not user.is_authenticated:
        return NO_RIGHTS
    if user.is_superuser:
        return ALL_RIGHTS
    membership = _memberships(user).get(project.organization_id)
    # .all(), not values_list: a project fetched with prefetch_related("editor_groups") asks nothing more; a user
    # in no group needs no look at them.
    groups = _group_ids(user) if membership is not None and project.pk is not None else set()
    elevated = bool(groups) and bool(groups & {group.pk for group in project.editor_groups.all()})
    return _rights_from(membership, elevated=elevated)


def task_rights(user, task):
    return project_rights(user, task.project)


def require(rights, need):
    """Raise PermissionDenied (403) unless `rights` allow `need`; Http404 if the object is not even visible."""
    if not rights.can_view:
        raise Http404("Not found, or you may not see it.")
    allowed = {VIEW: True, EDIT: rights.can_edit, MANAGE: rights.can_manage,
               CODE: rights.can_write_code}[need]
    if not allowed:
        raise PermissionDenied(_REFUSALS[need])
    return rights


def _get(queryset, pk):
    try:
        return queryset.get(pk=int(pk))
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("Not found, or you may not see it.") from None


def get_organization(user, pk, need=VIEW):
    organization = _get(Organization.objects.where_role(user), pk)
    organization.rights = require(organization_rights(user, organization), need)
    return organization


def get_project(user, pk, need=VIEW, queryset=None):
    """The project with `.rights` on it: 404 if the user may not see it, 403 if they may not do `need`."""
    project = _get((queryset if queryset is not None else Project.objects).visible_to(user)
                   .select_related("owner", "organization"), pk)
    project.rights = require(project_rights(user, project), need)
    return project


def get_task(user, pk, need=VIEW, queryset=None):
    """The task with `.rights` on it: 404 if the user may not see it, 403 if they may not do `need`."""
    task = _get((queryset if queryset is not None else Task.objects).visible_to(user)
                .select_related("project__owner", "project__organization"), pk)
    task.rights = require(task_rights(user, task), need)
    return task


def get_run(user, pk, need=VIEW, queryset=None):
    run = _get((queryset if queryset is not None else Run.objects).visible_to(user)
               .select_related("task__project__organization"), pk)
    run.rights = require(task_rights(user, run.task), need)
    return run


def get_backfill(user, pk, need=VIEW):
    """A backfill batch with `.rights` on it (its project's): 404 if unseen, 403 if `need` is not allowed."""
    backfill = _get(Backfill.objects.filter(project__in=Project.objects.visible_to(user))
                    .select_related("project__organization", "task", "requested_by"), pk)
    backfill.rights = require(project_rights(user, backfill.project), need)
    return backfill


def webhook_rights(user, webhook):
    """Rights on a webhook: those of the task or project it belongs to. An organization's webhook reaches every
    task of the organization, so only the organization's admins change it (as its connections): there
    `can_edit` is `can_manage`, and every member still sees it."""
    if webhook.organization_id:
        rights = organization_rights(user, webhook.organization_id)
        return replace(rights, can_edit=rights.can_manage)
    return project_rights(user, webhook.task.project if webhook.task_id else webhook.project)


def with_webhook_rights(user, webhooks, page_rights):
    """The webhooks a page lists, each with `.rights`: a task's and its project's take the page's rights (a task's
    are its project's), an organization's its own (webhook_rights). No query: the memberships are read once."""
    webhooks = list(webhooks)
    for webhook in webhooks:
        webhook.rights = webhook_rights(user, webhook) if webhook.organization_id else page_rights
    return webhooks


def get_webhook(user, pk, need=VIEW):
    """A task's, project's or organization's webhook with `.rights` on it (webhook_rights)."""
    webhook = _get(Webhook.objects.visible_to(user).select_related(
        "task__project__organization", "project__organization", "organization"), pk)
    webhook.rights = require(webhook_rights(user, webhook), need)
    return webhook


def sort_runs(user, runs, need):
    """(allowed, refused): the runs (which the user sees) split by whether the user may do `need` on each; the
    rights are read once per project, so a bulk action over many runs makes no query per run."""
    by_project, allowed, refused = {}, [], []
    for run in runs:
        project = run.task.project
        if project.pk not in by_project:
            by_project[project.pk] = allows(project_rights(user, project), need)
        (allowed if by_project[project.pk] else refused).append(run)
    return allowed, refused


def get_runs(user, pks, need=VIEW):
    """The runs with these ids, for a bulk action: 404 if the user may not see one of them, 403 if they may not
    do `need` on one of them (nothing is done then)."""
    wanted = set(pks)
    runs = list(Run.objects.visible_to(user).filter(pk__in=wanted).select_related("task__project__organization"))
    if len(runs) < len(wanted):
        raise Http404("Some of the selected runs do not exist, or you may not see them.")
    if sort_runs(user, runs, need)[1]:
        raise PermissionDenied(_REFUSALS[need])
    return runs


def get_connection(user, pk, need=VIEW):
    connection = _get(Connection.objects.visible_to(user).select_related("organization"), pk)
    connection.rights = require(organization_rights(user, connection.organization_id), need)
    return connection


def object_rights(user, obj):
    """Rights on any object the layer knows: an organization, project, task, run, connection or webhook."""
    if isinstance(obj, Organization):
        return organization_rights(user, obj)
    if isinstance(obj, Project):
        return project_rights(user, obj)
    if isinstance(obj, Task):
        return task_rights(user, obj)
    if isinstance(obj, Run):
        return task_rights(user, obj.task)
    if isinstance(obj, Backfill):
        return project_rights(user, obj.project)
    if isinstance(obj, Connection):
        return organization_rights(user, obj.organization_id)
    if isinstance(obj, Webhook):
        return webhook_rights(user, obj)
    raise TypeError(f"projects.access knows no rights on a {type(obj).__name__}")


def allows(rights, need):
    """Whether `rights` allow `need`, without raising (admin actions sort a selection with it)."""
    try:
        require(rights, need)
    except (Http404, PermissionDenied):
        return False
    return True


# --- management commands ---------------------------------------------------------------------------------

SUPERUSER = "superuser"
COMMAND_USER_HELP = (
    "Act as this user: the command checks the same rights as the page and records them as the requester. "
    "Default: the ETL_COMMAND_USER setting; without either, it acts as the server's operator (who can read the "
    "key files anyway) and checks nothing.")


def add_command_user_argument(parser):
    parser.add_argument("--user", metavar="USERNAME", help=COMMAND_USER_HELP)


def command_user(username=None):
    """The user a changing command acts for: --user, else settings.ETL_COMMAND_USER, else None (the operator)."""
    from django.conf import settings
    from django.core.management.base import CommandError

    username = username or getattr(settings, "ETL_COMMAND_USER", "")
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"There is no active user {username!r} to act as.")
    return user


def command_project(user, wanted):
    """The one project a command names by id or name (`wanted`, text). A user's names are those of the projects
    they see: another organization's project of the same name neither makes theirs ambiguous nor is revealed."""
    from django.core.management.base import CommandError

    projects = Project.objects.visible_to(user) if user else Project.objects.all()
    found = projects.filter(pk=int(wanted)) if wanted.isdigit() else projects.filter(name=wanted)
    if found.count() != 1:
        raise CommandError(f"There is no single project with id or name {wanted!r}"
                           f"{' that ' + user.username + ' may see' if user else ''}")
    return found.get()


def command_require(user, need, obj=None, doing="do that"):
    """A command's check: CommandError naming the missing right unless `user` may do `need` on `obj`.

    Without a user (the server's operator) everything is allowed, as before roles existed."""
    from django.core.management.base import CommandError

    if user is None:
        return
    if need == SUPERUSER:
        if not user.is_superuser:
            raise CommandError(f"{user.username} may not {doing}: that needs a superuser.")
        return
    rights = object_rights(user, obj)
    if not rights.can_view:
        raise CommandError(f"{user.username} may not {doing}: not found, or they may not see it.")
    if not allows(rights, need):
        raise CommandError(f"{user.username} may not {doing}. {refusal(need)}")
