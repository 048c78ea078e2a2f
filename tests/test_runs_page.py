"""The runs page (/runs/): every run a user may see, filtered, searched, sorted, paged; bulk rerun of failed runs;
and the status filter of All Tasks."""
import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from tests import factories

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def ago(**delta):
    return NOW - datetime.timedelta(**delta)


@pytest.fixture
def world():
    """Organization A (a viewer, an editor; two projects of two owners) and organization B with its own runs."""
    a, b = factories.organization("A"), factories.organization("B")
    viewer = factories.member(a, "viewer")
    editor = factories.member(a, "editor", "editor")
    owner2 = factories.member(a, "owner2", "editor")
    stranger = factories.member(b, "stranger", "admin")
    feeds = factories.project(a, editor, "Feeds")
    ledger = factories.project(a, owner2, "Ledger")
    secret = factories.project(b, stranger, "Secret project")
    orders = factories.task(feeds, "Orders")
    refunds = factories.task(feeds, "Refunds")
    journal = factories.task(ledger, "Journal")
    hidden = factories.task(secret, "Hidden task")

    def run(task, status, trigger="schedule", started=None, took=None, **fields):
        finished = started + took if started and took is not None else None
        return factories.run(task, status=status, trigger=trigger, started_at=started, finished_at=finished,
                             **fields)

    runs = {
        "orders_ok": run(orders, "succeeded", started=ago(hours=5), took=datetime.timedelta(seconds=30), rows=10),
        "orders_failed": run(orders, "failed", started=ago(hours=3), took=datetime.timedelta(seconds=5),
                             scheduled_for=ago(days=2), error="boom"),
        "refunds_failed": run(refunds, "failed", "manual", started=ago(hours=2), took=datetime.timedelta(minutes=9),
                              scheduled_for=ago(days=3)),
        "journal_warning": run(journal, "warning", "retry", started=ago(days=3), took=datetime.timedelta(minutes=2)),
        "journal_queued": run(journal, "queued", "dependency"),
        "hidden_failed": run(hidden, "failed", started=ago(hours=1), took=datetime.timedelta(seconds=1)),
    }
    return {"a": a, "b": b, "viewer": viewer, "editor": editor, "owner2": owner2, "stranger": stranger,
            "feeds": feeds, "ledger": ledger, "secret": secret, "orders": orders, "refunds": refunds,
            "journal": journal, "hidden": hidden, **runs}


def shown(client, query=""):
    """The run ids the runs page lists, in order."""
    response = client.get(f"/runs/{query}")
    assert response.status_code == 200, response.content.decode()[:500]
    return [int(number) for number in re.findall(r'<tr id="run-(\d+)"', response.content.decode())]


def ids(world, *names):
    return [world[name].pk for name in names]


def test_a_member_sees_every_run_of_their_organization_newest_first_and_nothing_of_another(client, world):
    client.force_login(world["viewer"])
    assert shown(client) == ids(world, "journal_queued", "journal_warning", "refunds_failed", "orders_failed",
                                "orders_ok")
    page = client.get("/runs/").content.decode()
    assert "Hidden task" not in page and "Secret project" not in page and "stranger" not in page
    client.force_login(world["stranger"])
    assert shown(client) == ids(world, "hidden_failed")


@pytest.mark.parametrize("walk_share", [1, 10**9], ids=["walk the runs", "runs of the tasks seen"])
def test_both_ways_of_reading_what_a_user_sees_list_the_same_runs(client, world, monkeypatch, walk_share):
    """RunQuerySet.listed_for walks the runs for a user who sees many tasks, else reads their tasks' runs."""
    monkeypatch.setattr("runs.models.WALK_SHARE", walk_share)
    client.force_login(world["viewer"])
    assert shown(client, "?sort=-started") == ids(world, "refunds_failed", "orders_failed", "orders_ok",
                                                  "journal_warning", "journal_queued")
    client.force_login(world["stranger"])
    assert shown(client) == ids(world, "hidden_failed")
    assert factories.user("nobody") and Run.objects.listed_for(type(world["viewer"]).objects.get(
        username="nobody")).count() == 0


def test_filter_values_offer_and_accept_only_what_the_user_sees(client, world):
    client.force_login(world["viewer"])
    page = client.get("/runs/").content.decode()
    projects = re.findall(r'<option value="\d+">([^<]+)</option>', page.partition('name="project"')[2].partition("</select>")[0])
    owners = re.findall(r'<option value="\d+">([^<]+)</option>', page.partition('name="owner"')[2].partition("</select>")[0])
    assert projects == ["Feeds", "Ledger"] and owners == ["editor", "owner2"]
    # Another organization's project, owner or task as a value: an error in place, and no run at all.
    for query in (f"?project={world['secret'].pk}", f"?owner={world['stranger'].pk}", f"?task={world['hidden'].pk}"):
        response = client.get(f"/runs/{query}").content.decode()
        assert "run-filter-error" in response and "Select a valid choice" in response, query
        assert shown(client, query) == [], query
    assert shown(client, f"?q=%23{world['hidden_failed'].pk}") == []  # a run id found by search: still not shown


def test_every_trigger_of_the_model_is_offered(client, world):
    """Read from Run.Trigger: a new trigger (backfill) appears without a change to the page."""
    client.force_login(world["viewer"])
    page = client.get("/runs/").content.decode()
    offered = re.findall(r'<option value="(\w+)"', page.partition('name="trigger"')[2].partition("</select>")[0])
    assert offered == list(Run.Trigger.values)


@pytest.mark.parametrize("query, expected", [
    ("?status=failed", ["refunds_failed", "orders_failed"]),
    ("?trigger=manual", ["refunds_failed"]),
    ("?trigger=retry", ["journal_warning"]),
    ("?trigger=dependency", ["journal_queued"]),
    ("?project={feeds}", ["refunds_failed", "orders_failed", "orders_ok"]),
    ("?owner={owner2}", ["journal_queued", "journal_warning"]),
    ("?task={orders}", ["orders_failed", "orders_ok"]),
    ("?q=refund", ["refunds_failed"]),
    ("?q=ledger", ["journal_queued", "journal_warning"]),
    ("?q=owner2", ["journal_queued", "journal_warning"]),
    ("?q=%23{orders_ok}", ["orders_ok"]),
    ("?status=failed&project={feeds}&q=orders", ["orders_failed"]),
])
def test_filters_and_search(client, world, query, expected):
    client.force_login(world["viewer"])
    query = query.format(**{name: getattr(value, "pk", None) for name, value in world.items()})
    assert shown(client, query) == ids(world, *expected)


def test_time_range_in_the_viewers_zone(client, world):
    client.force_login(world["viewer"])
    local = timezone.localtime(ago(hours=4)).strftime("%Y-%m-%dT%H:%M")
    # Started from four hours ago: the runs of three and two hours ago, not the one of five hours or three days.
    assert shown(client, f"?started_from={local}") == ids(world, "refunds_failed", "orders_failed")
    assert shown(client, f"?started_to={local}") == ids(world, "journal_warning", "orders_ok")
    response = client.get("/runs/?started_from=yesterday").content.decode()
    assert "Enter a valid date/time" in response and shown(client, "?started_from=yesterday") == []


def test_sort_by_start_and_by_duration_unstarted_last(client, world):
    client.force_login(world["viewer"])
    assert shown(client, "?sort=duration") == ids(world, "orders_failed", "orders_ok", "journal_warning",
                                                  "refunds_failed", "journal_queued")
    assert shown(client, "?sort=-duration") == ids(world, "refunds_failed", "journal_warning", "orders_ok",
                                                   "orders_failed", "journal_queued")
    assert shown(client, "?sort=-started") == ids(world, "refunds_failed", "orders_failed", "orders_ok",
                                                  "journal_warning", "journal_queued")
    assert shown(client, "?sort=started") == ids(world, "journal_warning", "orders_ok", "orders_failed",
                                                 "refunds_failed", "journal_queued")


def test_pages_follow_each_other_without_overlap(client, world):
    client.force_login(world["viewer"])
    pages = [shown(client, f"?per_page=2&page={number}&sort=-duration") for number in (1, 2, 3)]
    assert pages == [ids(world, "refunds_failed", "journal_warning"), ids(world, "orders_ok", "orders_failed"),
                     ids(world, "journal_queued")]
    assert "next" in client.get("/runs/?per_page=2&page=1").content.decode()


def test_queries_do_not_grow_with_the_runs_shown(client, world):
    client.force_login(world["viewer"])
    client.get("/runs/")
    with CaptureQueriesContext(connection) as few:
        client.get("/runs/")
    for number in range(40):
        factories.run(world["journal"], status="succeeded", started_at=ago(minutes=number), finished_at=NOW,
                      requested_by=world["editor"], trigger="manual")
    with CaptureQueriesContext(connection) as many:
        assert len(shown(client)) == 45
    assert len(many) == len(few) <= 20


# --- bulk rerun -------------------------------------------------------------------------------------------------

def rerun(client, *runs):
    return client.post("/runs/rerun/", {"run": [run.pk for run in runs], "next": "/runs/"})


def test_editor_reruns_the_selected_failed_runs_each_for_its_date_once_even_on_a_double_submit(client, world):
    client.force_login(world["editor"])
    before = Run.objects.count()
    selected = (world["orders_failed"], world["refunds_failed"], world["orders_ok"])
    response = rerun(client, *selected)
    assert response.status_code == 302
    again = Run.objects.filter(rerun_of__isnull=False).order_by("id")
    assert [(run.rerun_of_id, run.task_id, run.scheduled_for, run.status, run.trigger, run.requested_by)
            for run in again] == [
        (world["orders_failed"].pk, world["orders"].pk, world["orders_failed"].scheduled_for, "queued", "manual",
         world["editor"]),
        (world["refunds_failed"].pk, world["refunds"].pk, world["refunds_failed"].scheduled_for, "queued", "manual",
         world["editor"])]
    message = client.get("/runs/").content.decode()
    assert "Queued 2 reruns, each for its run&#x27;s date; 1 run not rerun" in message
    rerun(client, *selected)  # the same form sent again
    assert Run.objects.count() == before + 2
    assert "Queued 0 reruns" in client.get("/runs/").content.decode()
    assert again[0].log_lines.filter(message=f"Rerun of run {world['orders_failed'].pk}, for its date").exists()


def test_a_viewer_may_not_rerun_and_sees_no_checkbox(client, world):
    client.force_login(world["viewer"])
    page = client.get("/runs/").content.decode()
    assert 'name="run"' not in page and "rerun-button" not in page
    before = Run.objects.count()
    assert rerun(client, world["orders_failed"]).status_code == 403
    assert Run.objects.count() == before


def test_an_editor_sees_checkboxes_only_on_failed_runs(client, world):
    client.force_login(world["editor"])
    boxes = re.findall(r'name="run" value="(\d+)"', client.get("/runs/").content.decode())
    assert sorted(map(int, boxes)) == sorted(ids(world, "orders_failed", "refunds_failed"))


def test_rerunning_another_organizations_run_is_not_found_and_changes_nothing(client, world):
    client.force_login(world["editor"])
    before = Run.objects.count()
    assert rerun(client, world["orders_failed"], world["hidden_failed"]).status_code == 404
    assert Run.objects.count() == before


def test_a_rerun_that_fails_may_be_rerun_in_turn(client, world):
    client.force_login(world["editor"])
    rerun(client, world["orders_failed"])
    first = Run.objects.get(rerun_of=world["orders_failed"])
    Run.objects.filter(pk=first.pk).update(status="failed")
    rerun(client, first)
    assert Run.objects.get(rerun_of=first).scheduled_for == world["orders_failed"].scheduled_for


# --- All Tasks: the status filter --------------------------------------------------------------------------------

def test_all_tasks_filters_by_the_last_runs_status(client, world):
    factories.task(world["ledger"], "Never run yet")
    client.force_login(world["viewer"])

    def names(query):
        page = client.get(f"/tasks/{query}").content.decode()
        return re.findall(r'<td><a href="/tasks/\d+/">([^<]+)</a></td>', page)

    assert names("?status=failed") == ["Orders", "Refunds"]
    assert names("?status=queued") == ["Journal"]
    assert names("?status=never") == ["Never run yet"]
    assert names("?status=succeeded") == []
    assert client.get("/tasks/?status=bogus").status_code == 400


def test_a_runs_end_records_how_long_it_took(world):
    """`took`, which the sort by duration reads, is written with every end (RunQuerySet.move) and every save."""
    run = factories.run(world["orders"], status="queued")
    assert Run.objects.claim(run.pk, "worker-1")
    run.refresh_from_db()
    assert run.took is None
    assert run.mark_failed("boom", owner="worker-1")
    run.refresh_from_db()
    assert run.took == run.finished_at - run.started_at and run.took >= datetime.timedelta(0)
    skipped = Run.objects.create_skipped(world["orders"], "Skipped: still running", "schedule")
    cancelled = factories.run(world["orders"], status="queued")
    assert cancelled.cancel_queued("Cancelled")
    assert [Run.objects.get(pk=r.pk).took for r in (skipped, cancelled)] == [None, None]


@pytest.mark.parametrize("query", ["?sort=bogus", "?page=abc", "?page=999", "?per_page=0", "?per_page=x",
                                   "?task=abc", "?status=nonsense", "?trigger=%00", "?started_from=2026-13-45T99:99"])
def test_bad_values_answer_in_place_never_a_server_error(client, world, query):
    client.force_login(world["viewer"])
    assert client.get(f"/runs/{query}").status_code in (200, 400), query


def test_a_bad_selection_for_rerun_is_a_clear_refusal(client, world):
    client.force_login(world["editor"])
    assert client.post("/runs/rerun/", {"run": "abc"}).status_code == 400
    assert client.post("/runs/rerun/", {"run": "999999"}).status_code == 404
    assert client.get("/runs/rerun/").status_code == 405
    assert client.post("/runs/rerun/", {}).status_code == 302  # nothing selected: said on the page
