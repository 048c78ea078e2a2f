"""Backfill: a task or a project run once per date of a range, as of each date, in date order, at most N dates at
once, labelled as backfill on every page and cancelled as one batch; from the pages and from the commands.

Runs execute in this process through the workers' entry point (`drain`, `claim_next`), as in the orchestration
tests; the real cluster is in tests/test_pools_cluster.py.
"""
import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command

from runs import backfill, orchestration
from runs.models import Backfill, Run
from runs.orchestration import Refused
from tests import factories
from tests.fixtures.scheduling import drain

pytestmark = pytest.mark.django_db
NEW_YORK = dt.timezone(dt.timedelta(hours=-4))  # May 2024 in America/New_York
MAY = [dt.date(2024, 5, day) for day in range(1, 32)]


@pytest.fixture
def nyc_project(project):
    project.time_zone = "America/New_York"
    project.save()
    return project


@pytest.fixture
def dated_task(nyc_project, add_task):
    return add_task("Orders", project=nyc_project, file_name="orders_{today:%Y%m%d}.csv")


def claim(worker=1):
    return orchestration.claim_next(f"w:{worker}:1")


def finish(run_id):
    Run.objects.get(pk=run_id).mark_succeeded()


def run_date(run):
    return run.scheduled_for.astimezone(NEW_YORK).date()


# --- the batch and its order -----------------------------------------------------------------------------------

def test_a_task_backfill_runs_once_per_date_in_date_order_as_of_each_date(dated_task, owner):
    batch, made = backfill.start(dated_task.project, dated_task, MAY[0], MAY[2], user=owner)
    assert made and batch.date_count == 3
    runs = list(batch.runs.order_by("id"))
    assert [(run.trigger, run.status, run.requested_by) for run in runs] == [("backfill", "queued", owner)] * 3
    # Midnight of each date in the project's zone (New York, UTC-4 in May).
    assert [run.scheduled_for for run in runs] == [dt.datetime(2024, 5, d, 4, 0, tzinfo=dt.timezone.utc)
                                                   for d in (1, 2, 3)]
    done = drain()
    assert [run_date(run) for run in done] == MAY[:3]
    assert [run.files.get().name for run in done] == ["orders_20240501.csv", "orders_20240502.csv",
                                                      "orders_20240503.csv"]
    assert batch.state == "finished" and batch.counts() == {"succeeded": 3}


def test_at_most_the_chosen_number_of_dates_run_at_once_the_earliest_first(dated_task):
    dated_task.max_instances = 10  # the task's own limit is not what holds them back
    dated_task.save()
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[4], max_dates=2)
    first, second = claim(1), claim(2)
    assert claim(3) is None, "a third date waits while two are in flight"
    assert [run_date(Run.objects.get(pk=pk)) for pk in (first, second)] == MAY[:2]
    finish(second)
    third = claim(3)
    assert run_date(Run.objects.get(pk=third)) == MAY[2] and claim(4) is None
    finish(first)
    finish(third)
    assert sorted(run_date(Run.objects.get(pk=claim(n))) for n in (5, 6)) == MAY[3:5]
    assert batch.runs.filter(status="running").count() == 2


def test_a_backfill_never_holds_other_work_back(dated_task, add_task):
    backfill.start(dated_task.project, dated_task, MAY[0], MAY[30])
    other = add_task("Other export")
    later = factories.run(other)  # queued after 31 backfill runs of the same priority
    assert claim(1) != later.pk  # the first date goes first (older)
    assert claim(2) == later.pk, "the other task's run is not stuck behind 30 dates waiting their turn"


def test_a_project_backfill_keeps_series_order_within_each_date(nyc_project, add_task, owner):
    add_task("Load", project=nyc_project, run_rank=2)
    add_task("Extract", project=nyc_project, run_rank=1)
    batch, _ = backfill.start(nyc_project, None, MAY[0], MAY[1], user=owner)
    assert batch.runs.count() == 4
    done = drain()
    assert [(run_date(run), run.task.name) for run in done] == [
        (MAY[0], "Extract"), (MAY[0], "Load"), (MAY[1], "Extract"), (MAY[1], "Load")]
    assert {run.trigger for run in done} == {"backfill"}


def test_a_parallel_project_backfill_runs_a_dates_tasks_together_and_the_next_date_after(nyc_project, add_task):
    nyc_project.mode, nyc_project.max_parallel = "parallel", 5
    nyc_project.save()
    add_task("A", project=nyc_project)
    add_task("B", project=nyc_project)
    backfill.start(nyc_project, None, MAY[0], MAY[1])
    claimed = [claim(1), claim(2)]
    assert claim(3) is None
    assert {run_date(Run.objects.get(pk=pk)) for pk in claimed} == {MAY[0]}
    finish(claimed[0])
    assert claim(3) is None, "the date is in flight until both its runs ended"
    finish(claimed[1])
    assert run_date(Run.objects.get(pk=claim(3))) == MAY[1]


def test_a_busy_task_still_gets_every_date_queued(dated_task):
    factories.run(dated_task, status="running")
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[2])
    assert batch.counts() == {"queued": 3}


def test_a_failed_date_retries_inside_its_batch_and_holds_its_turn(dated_task):
    dated_task.retries, dated_task.retry_delay_seconds = 1, 0
    dated_task.save()
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1])
    first = Run.objects.get(pk=claim())
    first.mark_failed("boom")
    orchestration.after_run(first)
    retry = Run.objects.get(retry_of=first)
    assert retry.backfill_id == batch.pk and retry.scheduled_for == first.scheduled_for
    assert claim() == retry.pk, "the failed date's retry goes before the next date"


def test_a_failed_date_does_not_stop_the_next_and_a_series_date_skips_only_its_own_successors(
        nyc_project, add_task):
    add_task("Extract", project=nyc_project, run_rank=1, failing=True)
    add_task("Load", project=nyc_project, run_rank=2)
    batch, _ = backfill.start(nyc_project, None, MAY[0], MAY[1])
    done = drain()
    assert [(run_date(run), run.task.name, run.status) for run in done] == [
        (MAY[0], "Extract", "failed"), (MAY[1], "Extract", "failed")]
    assert batch.counts() == {"failed": 2, "skipped": 2}
    assert set(batch.runs.filter(status="skipped").values_list("error", flat=True)) == {
        "Skipped (upstream failed): Extract failed"}


@pytest.mark.parametrize("first, last, at_once, message", [
    (MAY[2], MAY[0], 1, "before the first"),
    (dt.date(2020, 1, 1), dt.date(2024, 1, 1), 1, "too many for one backfill"),
    (MAY[0], MAY[1], 0, "Dates at once must be between 1 and 20"),
])
def test_a_bad_range_is_refused_in_plain_words_and_nothing_is_queued(dated_task, first, last, at_once, message):
    with pytest.raises(Refused, match=message):
        backfill.start(dated_task.project, dated_task, first, last, at_once)
    assert not Run.objects.exists() and not Backfill.objects.exists()


def test_the_same_token_never_starts_a_second_batch(dated_task):
    batch, made = backfill.start(dated_task.project, dated_task, MAY[0], MAY[2], token="abc")
    again, made_again = backfill.start(dated_task.project, dated_task, MAY[0], MAY[2], token="abc")
    assert (made, made_again, again.pk) == (True, False, batch.pk)
    assert Backfill.objects.count() == 1 and Run.objects.count() == 3


# --- cancelling the batch ----------------------------------------------------------------------------------------

def test_cancelling_a_batch_cancels_its_queued_runs_and_stops_its_running_one(dated_task, owner):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[3])
    running = Run.objects.get(pk=claim())
    other = factories.run(dated_task)  # not part of the batch: left alone
    message = backfill.cancel(batch, owner)
    assert message == f"Backfill #{batch.pk} cancelled: 3 queued runs cancelled, 1 running run asked to stop."
    assert batch.counts() == {"cancelled": 3, "running": 1}
    running.refresh_from_db()
    other.refresh_from_db()
    assert running.cancel_requested and other.status == "queued"
    batch.refresh_from_db()
    assert batch.state == "cancelled" and batch.cancelled_by == owner
    with pytest.raises(Refused, match="no queued or running run left"):
        backfill.cancel(batch, owner)


def test_cancelling_a_series_project_batch_cancels_every_waiting_run_rather_than_skipping_them(
        nyc_project, add_task):
    add_task("Extract", project=nyc_project, run_rank=1)
    add_task("Load", project=nyc_project, run_rank=2)
    batch, _ = backfill.start(nyc_project, None, MAY[0], MAY[2])
    assert backfill.cancel(batch).startswith(f"Backfill #{batch.pk} cancelled: 6 queued runs cancelled, 0 running")
    assert batch.counts() == {"cancelled": 6}


def test_a_run_failing_after_its_batch_was_cancelled_is_not_retried(dated_task):
    dated_task.retries = 3
    dated_task.save()
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1])
    running = Run.objects.get(pk=claim())
    backfill.cancel(batch)
    running.mark_failed("boom")
    orchestration.after_run(running)
    assert not Run.objects.filter(trigger="retry").exists()


# --- pages -------------------------------------------------------------------------------------------------------

def test_task_page_backfill_previews_the_first_and_last_date_then_starts_one_batch(client, owner, dated_task):
    client.force_login(owner)
    page = client.get(f"/tasks/{dated_task.pk}/").content.decode()
    assert f'href="/tasks/{dated_task.pk}/backfill/"' in page
    form = client.get(f"/tasks/{dated_task.pk}/backfill/",
                      {"first_date": "2024-05-01", "last_date": "2024-05-03", "max_dates": "2"})
    html = form.content.decode()
    assert "3 runs</strong>: 3 dates (2024-05-01 to 2024-05-03) × 1 task" in html
    assert "First date: 2024-05-01" in html and "Last date: 2024-05-03" in html
    assert "orders_20240501.csv" in html and "orders_20240503.csv" in html and "orders_20240502.csv" not in html
    token = form.context["token"]
    assert not Run.objects.exists(), "the preview starts nothing"
    posted = {"first_date": "2024-05-01", "last_date": "2024-05-03", "max_dates": "2", "token": token}
    response = client.post(f"/tasks/{dated_task.pk}/backfill/", posted)
    batch = Backfill.objects.get()
    assert response.status_code == 302 and response.url == f"/runs/backfills/{batch.pk}/"
    again = client.post(f"/tasks/{dated_task.pk}/backfill/", posted, follow=True)
    assert Backfill.objects.count() == 1 and Run.objects.count() == 3, "a double submit starts nothing more"
    assert "had already been started" in again.content.decode()
    assert (batch.max_dates, batch.requested_by) == (2, owner)
    detail = client.get(f"/runs/backfills/{batch.pk}/").content.decode()
    assert detail.count('class="badge status-queued"') == 3 and "2024-05-02" in detail
    assert 'id="backfill-cancel-button"' in detail


def test_backfill_runs_are_labelled_on_the_task_history_and_the_run_page(client, owner, dated_task):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1], user=owner)
    run = batch.runs.order_by("id").first()
    client.force_login(owner)
    history = client.get(f"/tasks/{dated_task.pk}/").content.decode()
    label = f'Backfill <a href="/runs/backfills/{batch.pk}/" class="backfill-link">#{batch.pk}</a> as of 2024-05-01 by olivia'
    assert label in history
    assert f"Cancel backfill #{batch.pk}" in history and "Cancel queued run" not in history
    assert label in client.get(f"/runs/{run.pk}/").content.decode()
    assert f"#{batch.pk}</a> Orders, 2024-05-01 to 2024-05-02" in \
        client.get(f"/projects/{dated_task.project.pk}/").content.decode()


def test_a_bad_range_on_the_page_is_shown_in_place(client, owner, dated_task):
    client.force_login(owner)
    response = client.get(f"/tasks/{dated_task.pk}/backfill/",
                          {"first_date": "2024-05-03", "last_date": "2024-05-01", "max_dates": "1"})
    assert response.status_code == 200
    assert "The last date (2024-05-01) is before the first (2024-05-03)." in response.content.decode()
    response = client.post(f"/tasks/{dated_task.pk}/backfill/", {"first_date": "yesterday", "max_dates": "1"})
    assert response.status_code == 200 and "Enter a valid date." in response.content.decode()
    assert not Backfill.objects.exists()


def test_project_page_backfill_starts_every_task_for_each_date(client, owner, nyc_project, add_task):
    add_task("Extract", project=nyc_project, run_rank=1, file_name="e_{today:%d}.csv")
    add_task("Load", project=nyc_project, run_rank=2)
    client.force_login(owner)
    assert f'href="/projects/{nyc_project.pk}/backfill/"' in client.get(f"/projects/{nyc_project.pk}/").content.decode()
    html = client.get(f"/projects/{nyc_project.pk}/backfill/", {"first_date": "2024-05-01", "last_date": "2024-05-04",
                                                                 "max_dates": "1"}).content.decode()
    assert "8 runs</strong>: 4 dates" in html and "e_01.csv" in html and "e_04.csv" in html
    client.post(f"/projects/{nyc_project.pk}/backfill/",
                {"first_date": "2024-05-01", "last_date": "2024-05-04", "max_dates": "1", "token": "t1"})
    batch = Backfill.objects.get()
    assert batch.task is None and batch.runs.count() == 8
    assert batch.runs.exclude(upstream_run=None).count() == 4, "each date's Load waits for its Extract"


def test_cancel_button_cancels_the_batch(client, owner, dated_task):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1])
    client.force_login(owner)
    page = client.post(f"/runs/backfills/{batch.pk}/cancel/", follow=True).content.decode()
    assert "2 queued runs cancelled, 0 running runs asked to stop." in page
    assert batch.counts() == {"cancelled": 2}
    assert 'id="backfill-cancel-button"' not in client.get(f"/runs/backfills/{batch.pk}/").content.decode()


def test_a_viewer_sees_a_batch_but_may_not_start_or_cancel_one_and_an_outsider_sees_nothing(
        client, member, outsider, dated_task):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1])
    client.force_login(member)
    assert client.get(f"/runs/backfills/{batch.pk}/").status_code == 200
    assert 'id="backfill-cancel-button"' not in client.get(f"/runs/backfills/{batch.pk}/").content.decode()
    assert 'id="backfill-button"' not in client.get(f"/tasks/{dated_task.pk}/").content.decode()
    assert client.get(f"/tasks/{dated_task.pk}/backfill/").status_code == 403
    assert client.post(f"/tasks/{dated_task.pk}/backfill/", {"first_date": "2024-05-01",
                                                             "max_dates": "1"}).status_code == 403
    assert client.get(f"/projects/{dated_task.project.pk}/backfill/").status_code == 403
    assert client.post(f"/runs/backfills/{batch.pk}/cancel/").status_code == 403
    client.force_login(outsider)
    assert client.get(f"/runs/backfills/{batch.pk}/").status_code == 404
    assert client.post(f"/runs/backfills/{batch.pk}/cancel/").status_code == 404
    assert client.get(f"/tasks/{dated_task.pk}/backfill/").status_code == 404
    assert batch.counts() == {"queued": 2} and Backfill.objects.count() == 1


def test_the_admin_lists_batches_and_cancels_the_selected_ones(client, staff, dated_task):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[2])
    client.force_login(staff)
    listing = client.get("/admin/runs/backfill/").content.decode()
    assert "2024-05-01" in listing or "May 1, 2024" in listing
    runs = client.get("/admin/runs/run/", {"trigger__exact": "backfill"}).content.decode()
    assert runs.count('class="field-trigger">Backfill<') == 3
    client.post("/admin/runs/backfill/", {"action": "cancel_backfills", "_selected_action": [batch.pk]})
    assert batch.counts() == {"cancelled": 3}


# --- commands ----------------------------------------------------------------------------------------------------

def command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_run_task_as_of_queues_one_backfill_run_for_that_date(dated_task, owner):
    output = command("run_task", str(dated_task.pk), "--as-of", "2024-05-07", "--user", "olivia")
    run = Run.objects.get()
    assert output.strip() == f"run {run.pk} queued as of 2024-05-07 (backfill {run.backfill_id})"
    assert (run.trigger, run.requested_by, run_date(run)) == ("backfill", owner, dt.date(2024, 5, 7))


def test_run_task_as_of_with_sync_runs_here_with_that_dates_names(dated_task):
    output = command("run_task", str(dated_task.pk), "--as-of", "2024-05-07", "--sync")
    run = Run.objects.get()
    assert run.status == "succeeded" and run.files.get().name == "orders_20240507.csv"
    assert output.strip().endswith(f"run {run.pk} succeeded")


def test_backfill_command_starts_previews_and_cancels_a_batch(dated_task, nyc_project, add_task):
    preview = command("backfill", "--task", str(dated_task.pk), "--from", "2024-05-01", "--to", "2024-05-10",
                      "--preview")
    assert "10 run(s): 10 date(s) from 2024-05-01 to 2024-05-10 x 1 task(s)" in preview
    assert "2024-05-01 Orders: file orders_20240501.csv" in preview
    assert "2024-05-10 Orders: file orders_20240510.csv" in preview and not Run.objects.exists()
    output = command("backfill", "--task", str(dated_task.pk), "--from", "2024-05-01", "--to", "2024-05-10",
                     "--at-once", "3")
    batch = Backfill.objects.get()
    assert output.strip() == (f"backfill {batch.pk}: 10 run(s) for 10 date(s) queued (2024-05-01 to 2024-05-10, "
                              f"at most 3 at once)")
    assert batch.max_dates == 3
    assert command("backfill", "--cancel", str(batch.pk)).strip() == \
        f"Backfill #{batch.pk} cancelled: 10 queued runs cancelled, 0 running runs asked to stop."
    add_task("Load", project=nyc_project)
    output = command("backfill", "--project", nyc_project.name, "--from", "2024-05-01")
    assert "2 run(s) for 1 date(s) queued" in output


@pytest.mark.parametrize("args, message", [
    (["--task", "999999", "--from", "2024-05-01"], "There is no task with id 999999"),
    (["--from", "2024-05-01"], "Give --task TASK_ID or --project PROJECT"),
    (["--task", "{task}", "--from", "May 1st"], "The --from date 'May 1st' is not a date: use YYYY-MM-DD."),
    (["--task", "{task}", "--from", "2024-05-02", "--to", "2024-05-01"], "is before the first"),
    (["--task", "{task}", "--from", "2024-05-01", "--user", "max"], "max may not backfill task"),
    (["--task", "{task}", "--from", "2024-05-01", "--user", "eve"], "not found, or they may not see it"),
    (["--cancel", "999999"], "There is no backfill with id 999999"),
])
def test_backfill_command_refuses_bad_input_and_missing_rights(dated_task, member, outsider, args, message):
    args = [value.replace("{task}", str(dated_task.pk)) for value in args]
    with pytest.raises(CommandError, match=message):
        command("backfill", *args)
    assert not Run.objects.exists()


def test_only_an_editor_may_cancel_a_batch_from_the_command_line(dated_task, member):
    batch, _ = backfill.start(dated_task.project, dated_task, MAY[0], MAY[1])
    with pytest.raises(CommandError, match="max may not cancel backfill"):
        command("backfill", "--cancel", str(batch.pk), "--user", "max")
    assert command("backfill", "--cancel", str(batch.pk), "--user", "olivia").startswith(f"Backfill #{batch.pk}")
