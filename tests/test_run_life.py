"""A run's life: statuses change only along runs.models.TRANSITIONS, one conditional UPDATE each, so of two
writers racing exactly one wins; every change is logged; no other module changes a status."""
import ast
import logging
import pathlib
import threading

import pytest

from runs.models import TRANSITIONS, Run
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def task(project):
    return Task.objects.create(project=project, name="T", query="SELECT 1")


def test_the_table_says_where_each_status_may_go():
    S = Run.Status
    assert TRANSITIONS == {S.QUEUED: (S.RUNNING, S.CANCELLED, S.SKIPPED),
                           S.RUNNING: (S.SUCCEEDED, S.WARNING, S.FAILED, S.CANCELLED, S.QUEUED)}
    assert not set(TRANSITIONS) & set(Run.FINISHED)  # a finished run goes nowhere


def test_a_move_the_table_does_not_allow_is_refused(task):
    run = Run.objects.create(task=task)
    with pytest.raises(ValueError, match="cannot move from queued to succeeded"):
        Run.objects.filter(pk=run.pk).move(Run.Status.SUCCEEDED, [Run.Status.QUEUED])
    # Only a running run goes back to the queue (its worker shutting down); a finished one never does.
    with pytest.raises(ValueError, match="cannot move from failed to queued"):
        Run.objects.filter(pk=run.pk).move(Run.Status.QUEUED, [Run.Status.FAILED])
    assert Run.objects.filter(pk=run.pk).move(Run.Status.QUEUED) == 0  # it is queued, not running
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_a_queued_run_cannot_finish_and_a_finished_one_cannot_move(task):
    run = Run.objects.create(task=task)
    assert not run.mark_succeeded()  # never claimed: it did not run
    assert run.cancel_queued("Cancelled by ann before it started")
    assert not run.skip_queued("Skipped (upstream failed)")
    assert not Run.objects.claim(run.pk, "w1")
    assert not run.request_cancel()
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "Cancelled by ann before it started")
    assert [line.message for line in run.log_lines.all()] == ["Cancelled by ann before it started"]


def test_a_running_run_is_neither_skipped_nor_cancelled_as_queued(task):
    run = Run.objects.create(task=task)
    assert Run.objects.claim(run.pk, "w1")
    assert not run.skip_queued("Skipped (upstream failed)")
    assert not run.cancel_queued("Cancelled before it started")
    assert run.request_cancel()
    assert run.finish(Run.Status.CANCELLED, "Cancelled while running", "Cancelled: the run was stopped", "warning")
    run.refresh_from_db()
    assert (run.status, run.error, run.lease_expires_at) == ("cancelled", "Cancelled while running", None)
    assert run.finished_at is not None


def test_of_a_worker_finishing_and_an_operator_cancelling_exactly_one_wins(task, caplog):
    for _ in range(5):
        run = Run.objects.create(task=task)
        assert Run.objects.claim(run.pk, "w1")
        barrier, results = threading.Barrier(2), {}

        def write(name, change):
            barrier.wait()
            results[name] = change(Run.objects.get(pk=run.pk))

        with caplog.at_level(logging.INFO, logger="runs.models"):
            threads = [threading.Thread(target=write, args=("worker", lambda r: r.mark_succeeded("Finished"))),
                       threading.Thread(target=write, args=("reaper", lambda r: r.mark_failed("Interrupted")))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert sorted(results.values()) == [False, True]
        run.refresh_from_db()
        assert run.status == ("succeeded" if results["worker"] else "failed")
    assert "1 run(s) moved from running to succeeded" in caplog.text or \
        "1 run(s) moved from running to failed" in caplog.text


def test_a_claim_is_logged(task, caplog):
    run = Run.objects.create(task=task)
    with caplog.at_level(logging.INFO, logger="runs.models"):
        assert Run.objects.claim(run.pk, "w1")
    assert "1 run(s) moved from queued to running" in caplog.text


def _source_files():
    for folder in ("audit", "bench", "connections", "etl_portal", "projects", "runs", "tasks"):
        yield from (ROOT / folder).rglob("*.py")


def _status_updates(text):
    """Lines of `text` calling `.update(...)`/`.bulk_update(...)` with a status, however it is wrapped."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("update", "bulk_update"):
            names = [keyword.arg for keyword in node.keywords]
            names += [getattr(item, "value", None) for argument in node.args[1:] + [k.value for k in node.keywords]
                      if isinstance(argument, (ast.List, ast.Tuple)) for item in argument.elts]
            if "status" in names:
                lines.append(node.lineno)
    return lines


def test_no_status_is_changed_outside_the_run_model():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _source_files()
             if path != ROOT / "runs" / "models.py" for line in _status_updates(path.read_text())]
    assert found == []


def test_the_status_check_finds_what_it_looks_for():
    """The check above is not vacuous: it sees a status change written elsewhere, in any layout."""
    assert _status_updates("Run.objects.filter(pk=1).update(\n    error='x',\n    status='failed')") == [1]
    assert _status_updates("Run.objects.bulk_update(runs, ['error', 'status'])") == [1]
    assert _status_updates("Run.objects.filter(pk=1).update(error='x')") == []
    assert _status_updates((ROOT / "runs" / "models.py").read_text())  # where the one UPDATE lives
