"""The organization's and the project's shared settings pages (tasks/inheritance.py).

Organization settings need the organization's admin role, a project's the project's editor role
(projects/access.py). The organization's page also lists its webhooks (alerts/views.py manages them, for its
admins). A change first shows how many tasks take it (those that do not set the value
themselves, nor, for an organization's, at their project); a second click saves it.
"""
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse

from etl_portal.web import count_of
from projects import access
from projects.forms_levels import LevelSettingsForm, OrganizationParameterFormSet
from tasks import inheritance


def _settings_page(request, holder, kind, can_change, parameters=None, webhooks=None):
    form = LevelSettingsForm(request.POST or None, holder=holder)
    changes = None
    if request.method == "POST" and form.is_valid() and (parameters is None or parameters.is_valid()):
        changes = form.changes()
        if not changes or request.POST.get("confirm"):
            with transaction.atomic():
                inheritance.save_level_settings(holder, form.stored)
                if parameters is not None:
                    parameters.save()
            messages.success(request, f"Settings of {holder} saved"
                             + (f": {count_of(sum(row[3] for row in changes), 'task')} take the change at their "
                                "next run." if changes else "."))
            return redirect(request.path)
    return render(request, "projects/level_settings.html", {
        "holder": holder, "kind": kind, "form": form, "changes": changes, "parameters": parameters,
        "back_url": reverse(f"{kind}s:detail", args=[holder.pk]),
        "history_url": reverse(f"{kind}s:history", args=[holder.pk]), "can_change": can_change,
        "webhooks": webhooks,
    })


def organization_settings(request, pk):
    organization = access.get_organization(request.user, pk, access.VIEW)
    if request.method == "POST":
        access.require(organization.rights, access.MANAGE)
    parameters = OrganizationParameterFormSet(request.POST or None, instance=organization, prefix="parameters")
    webhooks = access.with_webhook_rights(request.user, organization.webhooks.select_related("organization"),
                                          organization.rights)
    return _settings_page(request, organization, "organization", organization.rights.can_manage, parameters,
                          webhooks)


def project_settings(request, pk):
    project = access.get_project(request.user, pk, access.VIEW)
    if request.method == "POST":
        access.require(project.rights, access.EDIT)
    return _settings_page(request, project, "project", project.rights.can_edit)
