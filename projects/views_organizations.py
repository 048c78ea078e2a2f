"""Organizations and their members: everyone sees their organizations and who is in them; admins change roles."""
from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from projects import access
from projects.models import Organization, Role


class MemberForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, widget=forms.Select(attrs={"class": "form-select"}))
    can_write_code = forms.BooleanField(required=False, label="May write code",
                                        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}))


class AddMemberForm(MemberForm):
    user = forms.CharField(label="User name or email", max_length=254,
                           widget=forms.TextInput(attrs={"class": "form-control"}))

    field_order = ["user", "role", "can_write_code"]

    def clean_user(self):
        name = self.cleaned_data["user"].strip()
        found = list(get_user_model().objects.filter(Q(username=name) | Q(email__iexact=name), is_active=True)[:2])
        if len(found) != 1:
            raise ValidationError("No single active user has this name or email; an administrator creates users "
                                  "in the admin.")
        return found[0]


def organization_list(request):
    organizations = Organization.objects.where_role(request.user).order_by("name")
    rows = [(organization, access.organization_rights(request.user, organization)) for organization in organizations]
    return render(request, "projects/organization_list.html", {"rows": rows})


def organization_detail(request, pk, add_form=None):
    organization = access.get_organization(request.user, pk)
    memberships = organization.memberships.select_related("user").order_by("user__username")
    return render(request, "projects/organization_detail.html", {
        "organization": organization, "rights": organization.rights, "memberships": memberships,
        "roles": Role.choices, "add_form": add_form or AddMemberForm(initial={"role": Role.VIEWER}),
    }, status=400 if add_form is not None else 200)


def _apply(request, organization, change, done):
    try:
        change()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
        access.forget_cached_rights(request.user)
    return redirect("organizations:detail", pk=organization.pk)


@require_POST
def member_add(request, pk):
    organization = access.get_organization(request.user, pk, access.MANAGE)
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        return organization_detail(request, pk, add_form=form)
    user = form.cleaned_data["user"]
    return _apply(request, organization,
                  lambda: organization.set_member(user, form.cleaned_data["role"], form.cleaned_data["can_write_code"]),
                  f"{user} is now a member of {organization}.")


@require_POST
def member_change(request, pk, user_id):
    organization = access.get_organization(request.user, pk, access.MANAGE)
    membership = organization.memberships.filter(user_id=user_id).select_related("user").first()
    form = MemberForm(request.POST)
    if membership is None or not form.is_valid():
        messages.error(request, "Choose a member and a role.")
        return redirect("organizations:detail", pk=organization.pk)
    return _apply(request, organization,
                  lambda: organization.set_member(membership.user, form.cleaned_data["role"],
                                                  form.cleaned_data["can_write_code"]),
                  f"{membership.user} is now {dict(Role.choices)[form.cleaned_data['role']].lower()}"
                  f"{' and may write code' if form.cleaned_data['can_write_code'] and form.cleaned_data['role'] != Role.VIEWER else ''}.")


@require_POST
def member_remove(request, pk, user_id):
    organization = access.get_organization(request.user, pk, access.MANAGE)
    membership = organization.memberships.filter(user_id=user_id).select_related("user").first()
    if membership is None:
        messages.error(request, "That user is not a member.")
        return redirect("organizations:detail", pk=organization.pk)
    return _apply(request, organization, lambda: organization.remove_member(membership.user),
                  f"{membership.user} is no longer a member of {organization}.")
