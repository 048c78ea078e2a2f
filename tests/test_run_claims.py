"""Claiming runs: one worker per run, leases renewed while running, dead workers' runs reaped."""
import datetime
import threading

import pytest
from django.utils import timezone

from runs.execution import execute_run, reap_interrupted_runs
from runs.models import Run
from tasks.models import Task
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def task(project, organization, tmp_path):
    source = factories.sqlite_source(organization, tmp_path / "s.sqlite3", name="S")
    return Task.objects.create(project=project, name="T", source_connection=source, query="SELECT 1 AS one")


def test_only_one_worker_claims_a_run(task):
    run = Run.objects.create(task=task)
    results = []
    barrier = threading.Barrier(4)

    def claim(worker):
        barrier.wait()
        results.append(Run.objects.claim(run.pk, worker))

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    run.refresh_from_db()
    assert run.status == "running" and run.lease_expires_at > timezone.now()


def test_a_run_already_claimed_is_not_executed_again(task):
    run = Run.objects.create(task=task)
    assert execute_run(run.pk) == "succeeded"
    assert execute_run(run.pk) == "not claimed"
    assert Run.objects.get(pk=run.pk).files.count() == 1


def test_a_run_whose_lease_lapsed_is_reaped_as_interrupted(task):
    alive = Run.objects.create(task=task)
    dead = Run.objects.create(task=task)
    Run.objects.claim(alive.pk, "host:1:1")
    Run.objects.claim(dead.pk, "host:2:1")
    Run.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert reap_interrupted_runs() == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.error.startswith("Interrupted: worker host:2:1 stopped renewing")
    assert Run.objects.get(pk=alive.pk).status == "running"


@pytest.mark.slow  # waits for the lease to be renewed on the clock
def test_a_running_run_keeps_renewing_its_lease(task, settings, monkeypatch):
    settings.ETL_RUN_LEASE_SECONDS = 3
    from tasks.source_kinds.query import QueryKind

    seen = []
    original = QueryKind.produce

    def slow_query(kind, ctx):
        first = Run.objects.get(pk=ctx.run.pk).lease_expires_at
        threading.Event().wait(2.5)
        seen.append((first, Run.objects.get(pk=ctx.run.pk).lease_expires_at))
        return original(kind, ctx)

    monkeypatch.setattr(QueryKind, "produce", slow_query)
    run = Run.objects.create(task=task)
    assert execute_run(run.pk) == "succeeded"
    first, later = seen[0]
    assert later > first  # renewed while the source was still working
    assert Run.objects.get(pk=run.pk).lease_expires_at is None


def test_an_unexpected_error_fails_the_run_and_never_escapes(task, monkeypatch):
    from tasks.source_kinds.query import QueryKind

    def explode(kind, ctx):
        raise KeyError("boom")

    monkeypatch.setattr(QueryKind, "produce", explode)
    run = Run.objects.create(task=task)
    assert execute_run(run.pk) == "failed"
    run.refresh_from_db()
    assert run.error == "Unexpected error: KeyError: 'boom'" and run.finished_at is not None
