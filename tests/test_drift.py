"""Drift: columns and row counts compared with the task's last good runs before anything is delivered."""
import datetime

import pytest

from runs import drift
from runs.models import Run, RunFile
from tests.fixtures.delivery import ORDERS_QUERY, log_text

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


@pytest.mark.parametrize("before, after, changes", [
    ([["id", "int4"], ["amount", "numeric"]], [["id", "int4"], ["amount", "numeric"]], []),
    ([["id", "int4"], ["amount", "numeric"]], [["id", "int4"], ["total", "numeric"]],
     ["column amount renamed to total"]),
    ([["id", "int4"], ["amount", "numeric"]], [["id", "int4"], ["amount", "text"]],
     ["column amount changed type from numeric to text"]),
    ([["id", "int4"], ["amount", "numeric"]], [["id", "int4"]], ["column amount removed"]),
    ([["id", "int4"]], [["id", "int4"], ["note", "text"]], ["column note added"]),
    ([["id", "int4"], ["amount", "numeric"]], [["amount", "numeric"], ["id", "int4"]],
     ["the columns' order changed"]),
    # A source that declares no types (SQLite) is judged by its names alone.
    ([["id", None], ["amount", None]], [["id", None], ["amount", None]], []),
    ([["id", "int4"], ["amount", "numeric"]], [["id", "int4"], ["total", "text"]],
     ["column amount removed", "column total added"]),
])
def test_column_changes_are_named(before, after, changes):
    assert drift.column_changes(before, after) == changes


def test_the_row_band_needs_history_and_ignores_one_odd_day():
    assert drift.row_band([40_000] * 4) is None
    median, low, high = drift.row_band([40_000, 40_210, 39_870, 40_100, 39_990, 1_000_000])
    assert median == pytest.approx(40_050)
    assert low <= 39_000 and 41_000 <= high < 60_000  # the one odd day does not widen the band
    assert not low <= 2 <= high
    _, low, high = drift.row_band([10] * 6)  # a count that never varied: a floor of 2.5 %, at least one row
    assert (low, high) == (6, 14)


def orders_destination(local_folder):
    connection, folder = local_folder("Vendor")
    return [(connection, "")], folder


@pytest.mark.django_db
def test_a_retyped_and_added_column_warns_and_still_delivers(make_task, pg_connection, local_folder, ny_project,
                                                             run_at, owner, client_of):
    destinations, folder = orders_destination(local_folder)
    task = make_task(pg_connection, "SELECT 1::int AS id, 12.50::numeric AS amount", destinations,
                     file_name="orders.csv")
    first = run_at(task, MARCH_15)
    assert first.status == "succeeded", log_text(first)
    assert first.columns == [["id", "int4"], ["amount", "numeric"]]

    task.query = "SELECT 1::int AS id, '12.50'::text AS amount, 'x'::text AS note"
    task.save()
    second = run_at(task, MARCH_15)

    assert second.status == "warning"
    assert second.error == (f"Output drift since run #{first.pk}: column note added; column amount changed type "
                            "from numeric to text")
    assert (folder / "orders.csv").read_bytes().startswith(b"id,amount,note")  # warned, and delivered
    page = client_of(owner).get(task.get_absolute_url()).content.decode()
    assert "column amount changed type from numeric to text" in page and 'id="accept-drift"' in page

    third = run_at(task, MARCH_15)  # the warned run delivered: it is the new baseline
    assert third.status == "succeeded", log_text(third)
    assert third.drift == {}


@pytest.mark.django_db
def test_stop_mode_holds_the_delivery_until_an_editor_accepts(make_task, sqlite_orders, local_folder, ny_project,
                                                              run_at, owner, member, client_of):
    destinations, folder = orders_destination(local_folder)
    task = make_task(sqlite_orders, ORDERS_QUERY, destinations, file_name="orders.csv", drift_check="stop")
    assert run_at(task, MARCH_15).status == "succeeded"
    (folder / "orders.csv").unlink()

    task.query = "SELECT id, day, customer AS client, amount, note FROM orders ORDER BY id"
    task.save()
    stopped = run_at(task, MARCH_15)

    assert stopped.status == "failed"
    assert "Not delivered: Output drift since run" in stopped.error
    assert "column customer renamed to client" in stopped.error
    assert not (folder / "orders.csv").exists() and not RunFile.objects.filter(run=stopped).exists()

    assert client_of(member).post(f"/runs/{stopped.pk}/accept-drift/").status_code == 403
    page = client_of(owner).post(f"/runs/{stopped.pk}/accept-drift/", follow=True).content.decode()
    assert f"Accepted: the next runs of {task.name} compare with run #{stopped.pk}." in page
    assert "Drift accepted by olivia" in log_text(stopped)

    after = run_at(task, MARCH_15)
    assert after.status == "succeeded", log_text(after)
    assert (folder / "orders.csv").read_bytes().startswith(b"id,day,client")


@pytest.mark.django_db
def test_a_row_count_far_below_the_usual_is_caught(make_task, sqlite_orders, local_folder, ny_project, run_at):
    destinations, _ = orders_destination(local_folder)
    task = make_task(sqlite_orders, ORDERS_QUERY, destinations, file_name="orders.csv")
    for rows in (40_120, 39_870, 40_030, 40_300, 39_950, 40_010):  # the task's history
        Run.objects.create(task=task, status="succeeded", rows=rows)

    run = run_at(task, MARCH_15)  # the SQLite table holds three orders today

    assert run.status == "warning"
    assert run.drift["rows"] == {"count": 3, "median": 40_020.0, "low": 36_018, "high": 44_022, "history": 6}
    assert "3 rows, outside the usual 36,018–44,022 (median 40,020 of the last 6 good runs)" in run.error


@pytest.mark.django_db
def test_off_means_not_checked(make_task, sqlite_orders, local_folder, ny_project, run_at):
    destinations, _ = orders_destination(local_folder)
    task = make_task(sqlite_orders, ORDERS_QUERY, destinations, file_name="orders.csv", drift_check="off")
    for _ in range(5):
        Run.objects.create(task=task, status="succeeded", rows=40_000)
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded" and run.drift == {}
