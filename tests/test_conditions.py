"""Conditions: every one must hold for the output to be delivered; a failing one makes a warning run."""
import datetime

import pytest

from projects.models import Parameter
from runs.models import RunFile
from tasks.models import Condition
from tests.fixtures.delivery import ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


@pytest.fixture
def guarded_task(make_task, sqlite_orders, local_folder, ny_project):
    connection, folder = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv")
    task.drop_folder = folder
    return task


def condition(task, kind, **fields):
    return Condition.objects.create(task=task, kind=kind, **fields)


def test_all_conditions_hold_and_the_file_is_delivered(guarded_task, sqlite_orders, run_at):
    Parameter.objects.create(task=guarded_task, key="expected", value="2")
    condition(guarded_task, "query_rows", connection=sqlite_orders,
              query="SELECT 1 FROM orders WHERE day = {yesterday}")
    condition(guarded_task, "query_value", query="SELECT count(*) FROM orders WHERE day = {yesterday}",
              operator=">=", value="{expected}")
    condition(guarded_task, "min_rows", value="3")
    condition(guarded_task, "max_rows", value="3")

    run = run_at(guarded_task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    assert (guarded_task.drop_folder / "orders.csv").exists()
    log = log_text(run)
    assert "Condition 2 (the condition query's first value >= {expected}) holds: the first value is 2" in log
    assert "Condition 3 (the output has at least 3 rows) holds: 3 rows" in log


@pytest.mark.parametrize("kind, fields, reason", [
    ("query_rows", {"query": "SELECT 1 FROM orders WHERE day = {today}"},
     "Condition 1 (the condition query returns at least one row) does not hold: it returned no rows"),
    ("query_value", {"query": "SELECT max(amount) FROM orders", "operator": "=", "value": "99"},
     "Condition 1 (the condition query's first value = 99) does not hold: the first value is 12.50"),
    ("query_value", {"query": "SELECT max(day) FROM orders", "operator": "<>", "value": "{yesterday}"},
     "Condition 1 (the condition query's first value <> {yesterday}) does not hold: the first value is 2024-03-14"),
    ("min_rows", {"value": "4"}, "Condition 1 (the output has at least 4 rows) does not hold: 3 rows"),
    ("max_rows", {"value": "2"}, "Condition 1 (the output has at most 2 rows) does not hold: 3 rows"),
])
def test_a_failing_condition_delivers_nothing_and_warns(guarded_task, run_at, kind, fields, reason):
    condition(guarded_task, kind, **fields)

    run = run_at(guarded_task, MARCH_15)

    assert run.status == "warning"
    assert run.error == f"Not delivered: {reason}"
    assert list(guarded_task.drop_folder.iterdir()) == []
    assert not RunFile.objects.filter(run=run).exists()


def test_a_condition_query_that_cannot_run_fails_the_run(guarded_task, run_at):
    condition(guarded_task, "query_rows", query="SELECT * FROM no_such_table")

    run = run_at(guarded_task, MARCH_15)

    assert run.status == "failed"
    assert run.error.startswith("The condition query on Orders DB failed: SQLite error: no such table: no_such_table")
    assert list(guarded_task.drop_folder.iterdir()) == []
