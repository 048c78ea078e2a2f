"""Connection pools: a connection's run slots cap the runs using it at once; the others wait queued, shown as
"waiting for <connection>", and start best priority first as slots free up. Claims here go through the workers'
entry point in this process; tests/test_pools_cluster.py holds the cap across two real clusters."""
import pytest

from runs import orchestration
from runs.models import Run
from tests import factories

pytestmark = pytest.mark.django_db


def claim(worker=1):
    return orchestration.claim_next(f"w:{worker}:1")


def end(run_id):
    run = Run.objects.get(pk=run_id)
    run.mark_succeeded()
    orchestration.after_run(run)


@pytest.fixture
def capped(source_db):
    source_db.max_runs = 1
    source_db.save()
    return source_db


def test_runs_beyond_the_cap_wait_and_start_as_a_slot_frees(capped, add_task):
    first, second = add_task("Orders"), add_task("Customers")
    running = factories.run(first)
    waiting = factories.run(second)
    assert claim(1) == running.pk
    assert claim(2) is None, "the source's one slot is taken"
    end(running.pk)
    assert claim(2) == waiting.pk


def test_a_freed_slot_goes_to_the_highest_priority_run_waiting(capped, add_task):
    busy = factories.run(add_task("Busy"))
    assert claim() == busy.pk
    low = factories.run(add_task("Low", priority=90), priority=90)
    high = factories.run(add_task("High", priority=10), priority=10)
    assert claim() is None
    end(busy.pk)
    assert claim() == high.pk
    end(high.pk)
    assert claim() == low.pk


def test_a_cap_of_two_lets_two_run_and_no_cap_lets_all(capped, add_task):
    capped.max_runs = 2
    capped.save()
    runs = [factories.run(add_task(f"Export {n}")) for n in range(4)]
    assert [claim(n) for n in range(3)] == [runs[0].pk, runs[1].pk, None]
    capped.max_runs = None
    capped.save()
    assert [claim(n) for n in range(3, 5)] == [runs[2].pk, runs[3].pk]


def test_a_destination_counts_as_using_the_connection(organization, capped, add_task, tmp_path):
    capped.max_runs = None
    capped.save()
    vendor = factories.local_folder(organization, tmp_path / "vendor", name="Vendor drop", max_runs=1)
    first = add_task("To vendor A")
    second = add_task("To vendor B")
    free = add_task("Kept here")
    for task in (first, second):
        task.destinations.create(connection=vendor, folder="in", position=0)
    runs = [factories.run(task) for task in (first, second, free)]
    assert [claim(n) for n in range(3)] == [runs[0].pk, runs[2].pk, None]


def test_an_inherited_default_destination_counts_as_using_the_connection(organization, capped, add_task, tmp_path):
    capped.max_runs = None
    capped.save()
    vendor = factories.local_folder(organization, tmp_path / "vendor", name="Vendor drop", max_runs=1)
    first = add_task("To vendor A")
    first.project.settings = {"destination_connection": vendor.pk}  # the project's default destination
    first.project.save()
    second = add_task("To vendor B")
    own = add_task("Own destination")
    own.destinations.create(connection=capped, folder="out", position=0)  # its own: the default does not apply
    runs = [factories.run(task) for task in (first, second, own)]
    assert [claim(n) for n in range(3)] == [runs[0].pk, runs[2].pk, None]


def test_other_tasks_are_not_held_back_by_a_line_waiting_for_a_full_connection(capped, add_task, organization,
                                                                               tmp_path):
    pooled = add_task("Pooled")
    pooled.max_instances = 100
    pooled.save()
    line = [factories.run(pooled) for _ in range(orchestration.CANDIDATES + 5)]
    other_db = factories.sqlite_source(organization, tmp_path / "other.sqlite3", "CREATE TABLE orders (id int)",
                                       name="Other DB")
    other = factories.task(pooled.project, "Elsewhere", source_connection=other_db, query="SELECT 1")
    late = factories.run(other)
    assert claim(1) == line[0].pk
    assert claim(2) == late.pk


def test_waiting_for_the_connection_is_shown_on_the_task_and_run_pages(client, owner, capped, add_task):
    first, second = add_task("Orders"), add_task("Customers")
    running = factories.run(first)
    waiting = factories.run(second)
    claim()
    client.force_login(owner)
    assert "waiting for Orders DB" in client.get(f"/runs/{waiting.pk}/").content.decode()
    assert "waiting for Orders DB" in client.get(f"/tasks/{second.pk}/").content.decode()
    assert "waiting for" not in client.get(f"/runs/{running.pk}/").content.decode()
    end(running.pk)
    assert "waiting for" not in client.get(f"/runs/{waiting.pk}/").content.decode()


def test_run_slots_are_set_on_the_connection_page_and_shown_there(client, org_admin, source_db, add_task):
    client.force_login(org_admin)
    form = client.get(f"/connections/{source_db.pk}/edit/")
    assert 'name="max_runs"' in form.content.decode()
    data = {name: value for name, value in form.context["form"].initial.items() if value is not None}
    data.update(organization=source_db.organization_id, name="Orders DB", kind="sqlite", path=source_db.path,
                max_runs="3")
    response = client.post(f"/connections/{source_db.pk}/edit/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    source_db.refresh_from_db()
    assert source_db.max_runs == 3
    factories.run(add_task("Orders"), status="running")
    detail = client.get(f"/connections/{source_db.pk}/").content.decode()
    assert "at most 3 runs at once; 1 running now" in detail
    data["max_runs"] = "0"
    response = client.post(f"/connections/{source_db.pk}/edit/", data)
    assert response.status_code == 200 and "Ensure this value is greater than or equal to 1." in \
        response.content.decode()


def test_run_slots_are_set_and_kept_through_the_api(org_admin, source_db):
    from rest_framework.test import APIClient

    from api.models import ApiToken

    _, key = ApiToken.issue(org_admin, "script")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    answer = api.patch(f"/api/v1/connections/{source_db.pk}/", {"max_runs": 4}, format="json")
    assert answer.status_code == 200 and answer.json()["max_runs"] == 4
    answer = api.patch(f"/api/v1/connections/{source_db.pk}/", {"description": "the shop"}, format="json")
    assert answer.json()["max_runs"] == 4, "a change of something else keeps the slots"
    refused = api.patch(f"/api/v1/connections/{source_db.pk}/", {"max_runs": 0}, format="json")
    assert refused.status_code == 400 and "max_runs" in str(refused.json())
    source_db.refresh_from_db()
    assert source_db.max_runs == 4
