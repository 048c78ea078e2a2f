"""The housekeeping loop (projects/housekeeping.py): one leader, fenced; each due time fired once; and, with a
real cluster whose every worker is busy, triggers still fire and a killed worker's run is still reaped on time.
"""
import datetime as dt
import time

import pytest

from projects import housekeeping, scheduling
from projects.housekeeping import Leadership, LostLeadership
from projects.models import LeaderLease, Trigger
from runs import queueing
from runs.models import Run
from tests.fixtures.scheduling import drain, kill_hard, start_housekeeping, wait_for
from tests.servers.common import stop_process


@pytest.mark.django_db
def test_one_leader_at_a_time_and_a_takeover_only_after_the_lease_expired(clock):
    first, second = Leadership(holder="host-a:1", seconds=10), Leadership(holder="host-b:2", seconds=10)
    assert first.acquire(clock.now) and not second.acquire(clock.now)
    assert first.acquire(clock.advance(seconds=9)), "the holder renews its own lease"
    assert not second.acquire(clock.advance(seconds=9)), "renewed 9 s ago: not expired yet"
    assert second.acquire(clock.advance(seconds=2))
    lease = LeaderLease.objects.get()
    assert (lease.holder, lease.token) == ("host-b:2", first.token + 1)
    with pytest.raises(LostLeadership):
        first.fence(clock.now)  # the old leader, back from a pause, may change nothing
    assert not first.acquire(clock.now)
    second.release(clock.now)
    assert first.acquire(clock.now), "a released lease is free at once"


@pytest.mark.django_db
def test_a_due_trigger_fires_once_per_due_time_and_a_fenced_out_leader_fires_nothing(project, add_task,
                                                                                    add_trigger, clock):
    add_task("Orders")
    trigger = add_trigger(project, minute="*/5")
    scheduling.arm(trigger, clock.now)
    due = Trigger.objects.get(pk=trigger.pk).next_run_at
    leader = Leadership(holder="host-a:1", seconds=10)
    assert leader.acquire(clock.set(due))
    assert housekeeping.fire_due_triggers(leader, clock.now) == {trigger.pk: "started 1 run(s)"}
    # Two passes at the same instant (two loops, a retried pass): the due time is fired once.
    assert housekeeping.fire_due_triggers(leader, clock.now) == {}
    assert scheduling.fire_trigger(trigger.pk, now=clock.now, execute=False) == "not due: re-armed"
    assert list(Run.objects.values_list("scheduled_for", flat=True)) == [due]
    assert Trigger.objects.get(pk=trigger.pk).next_run_at == due + dt.timedelta(minutes=5)
    drain(clock.now)

    # The next time falls due, but another process took the lease meanwhile: the old leader starts nothing.
    usurper = Leadership(holder="host-b:2", seconds=10)
    assert usurper.acquire(clock.advance(minutes=5, seconds=11))
    with pytest.raises(LostLeadership):
        housekeeping.fire_due_triggers(leader, clock.now)
    assert Run.objects.count() == 1 and Trigger.objects.get(pk=trigger.pk).next_run_at == due + dt.timedelta(
        minutes=5)
    assert housekeeping.fire_due_triggers(usurper, clock.now) == {trigger.pk: "started 1 run(s)"}
    assert Run.objects.count() == 2


@pytest.mark.django_db
def test_a_pass_runs_only_on_the_leader_and_reaps_a_run_whose_worker_died(add_task):
    task = add_task("Orders")
    run = queueing.enqueue_run(task)
    assert Run.objects.claim(run.pk, "gone-host:4242:1")
    Run.objects.filter(pk=run.pk).update(lease_expires_at=run.created_at - dt.timedelta(seconds=1))
    leader, other = Leadership(holder="host-a:1"), Leadership(holder="host-b:2")
    assert housekeeping.run_pass(leader, django_schedules=False)["reaped"] == 1
    assert housekeeping.run_pass(other, django_schedules=False) is None
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("Interrupted: worker gone-host:4242:1")
    assert housekeeping.leader_status()[0] == "host-a:1"


# --- a real cluster, every worker busy ---------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_busy_cluster_delays_neither_firing_nor_reaping(qcluster, project, add_task, add_trigger,
                                                         tmp_path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Two housekeeping processes compete for the lead, as on two hosts.
    loops = [start_housekeeping(tmp_path / f"housekeeping-{n}.log", ETL_LEADER_LEASE_SECONDS=3) for n in (1, 2)]
    try:
        # Two workers, two slow tasks (one run at a time each): both workers busy, a third run waiting.
        slow_tasks = [add_task(f"Busy extract {n}", slow=True, retries=0) for n in (1, 2)]
        busy = [queueing.enqueue_run(task) for task in slow_tasks + slow_tasks[:1]]
        slow = Run.objects.filter(task__in=slow_tasks)
        wait_for(lambda: slow.filter(status="running").count() == 2, timeout=20,
                 message=f"both workers busy\n{qcluster.log()[-2000:]}")
        wait_for(lambda: housekeeping.leader_status(), timeout=30, message="a housekeeping leader")
        ticker = add_task("Ticker")
        trigger = add_trigger(project, second="*")
        wait_for(lambda: ticker.runs.count() >= 4, timeout=15, message="four scheduled fires while busy\n" +
                 "\n".join((tmp_path / f"housekeeping-{n}.log").read_text()[-1500:] for n in (1, 2)))
        # Killed mid-run, with every other worker busy: its run ends within the lease (2 s) and a few seconds.
        victim = slow.filter(status="running").first()
        kill_hard(int(victim.worker.split(":")[1]))
        killed_at = time.monotonic()
        wait_for(lambda: Run.objects.filter(pk=victim.pk, status="failed").exists(), timeout=20,
                 message="the reaper")
        reap_delay = time.monotonic() - killed_at
        trigger.enabled = False
        trigger.save()
        fires = list(ticker.runs.order_by("scheduled_for"))
        assert slow.filter(status="running").count() >= 1, "the workers were still busy throughout"
        assert reap_delay < 2 + 5, f"reaped {reap_delay:.1f} s after the kill"
        moments = [run.scheduled_for for run in fires]
        assert len(moments) == len(set(moments)), "two housekeeping loops, yet each due time fired once"
        # Each fire was recorded (its run created) about a second of its due time at most, workers busy or not
        # (queued behind the runs, as before, it would wait for a worker: tens of seconds here, hours in life).
        lateness = [(run.created_at - run.scheduled_for).total_seconds() for run in fires]
        assert all(0 <= late < 1.5 for late in lateness), lateness
        assert Run.objects.get(pk=victim.pk).error.startswith("Interrupted: worker")
    finally:
        for loop in loops:
            stop_process(loop, timeout=20)
        Run.objects.filter(pk__in=[run.pk for run in busy], status="queued").update(status="cancelled")
        for run in busy:
            Run.objects.filter(pk=run.pk, status="running").update(cancel_requested=True)
