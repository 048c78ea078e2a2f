"""Backfill pages: start a task or a project for a date range (preview of the first and last date, then confirm),
a batch's page, and cancelling a batch. The work is in runs/backfill.py; rights come from projects/access.py."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.middleware import activate_zone
from etl_portal.web import safe_next
from projects import access
from runs import backfill as backfills
from runs.forms_backfill import BackfillForm
from runs.orchestration import Refused


def task_backfill(request, pk):
    task = access.get_task(request.user, pk, access.EDIT)
    return _backfill_page(request, task.project, task)


def project_backfill(request, pk):
    project = access.get_project(request.user, pk, access.EDIT)
    return _backfill_page(request, project, None)


def _backfill_page(request, project, task):
    """GET without dates: the form. GET with dates: the plan and the preview of the first and last date, and the
    confirm button (a POST carrying a one-time token). POST: start the batch, then its page."""
    activate_zone(request, project.time_zone)
    data = request.POST if request.method == "POST" else (request.GET if "first_date" in request.GET else None)
    form = BackfillForm(data, initial={"max_dates": 1})
    context = {"form": form, "project": project, "task": task}
    if form.is_bound and form.is_valid():
        values = form.cleaned_data
        args = (project, task, values["first_date"], values["last_date"], values["max_dates"])
        try:
            if request.method == "POST":
                batch, made = backfills.start(*args, user=request.user, token=values["token"] or None)
                if made:
                    messages.success(request, f"Backfill #{batch.pk} started: {batch.runs.count()} run(s) for "
                                              f"{batch.date_count} date(s).")
                else:
                    messages.info(request, f"Backfill #{batch.pk} had already been started by this form.")
                return redirect(batch)
            context["plan"] = backfills.plan(*args)
            context["token"] = BackfillForm.new_token()
        except Refused as exc:
            form.add_error(None, str(exc))
    return render(request, "runs/backfill_form.html", context)


def backfill_detail(request, pk):
    batch = access.get_backfill(request.user, pk)
    activate_zone(request, batch.project.time_zone)
    return render(request, "runs/backfill_detail.html", {
        "backfill": batch, "dates": backfills.dates_of(batch), "counts": batch.counts(), "state": batch.state,
        "can_edit": batch.rights.can_edit})


@require_POST
def backfill_cancel(request, pk):
    batch = access.get_backfill(request.user, pk, access.EDIT)
    try:
        messages.success(request, backfills.cancel(batch, request.user))
    except Refused as exc:
        messages.error(request, str(exc))
    return safe_next(request, "runs:backfill", batch.pk)
