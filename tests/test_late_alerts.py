"""Late and missed runs (alerts/deadlines.py): each raised once, cleared once when its run ends, sent to the
task's channels; first with an injected clock, then for real with the housekeeping loop, a worker thread and a
real HTTP receiver (transaction=True: the threads see each other's commits)."""
import datetime as dt
import threading
import time
import zoneinfo

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from alerts.dashboard import late_alerts_context
from alerts.deadlines import Checker
from alerts.models import Alert, Delivery, Webhook
from projects import housekeeping, scheduling
from projects.housekeeping import Leadership
from projects.models import Trigger
from runs.models import Run
from tests import factories
from tests.fixtures.delivery import log_text
from tests.fixtures.scheduling import drain, wait_for

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# A few seconds of CPU inside SQLite: longer than the 1 s maximum duration of the real-timing test.
SECONDS_OF_CPU = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) "
                  "SELECT count(*) FROM c")


def scheduled_run(task, due, **fields):
    return factories.run(task, trigger=Run.Trigger.SCHEDULE, scheduled_for=due, **fields)


@pytest.mark.django_db
def test_a_run_past_its_maximum_duration_is_late_once_and_cleared_once_when_it_ends(add_task, clock):
    task = add_task("Orders", max_duration=dt.timedelta(minutes=30))
    run = scheduled_run(task, clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now, worker="w:1:1")
    checker = Checker()

    assert checker.check(now=clock.advance(minutes=29, seconds=59))["raised"] == []
    [alert] = checker.check(now=clock.advance(seconds=2))["raised"]
    assert (alert.kind, alert.run, alert.due_at) == ("late", run, run.scheduled_for + dt.timedelta(minutes=30))
    assert alert.message == "Late: still running after 30 min (its maximum duration)"
    assert checker.check(now=clock.advance(minutes=5)) == {"raised": [], "cleared": 0}, "raised once"
    assert "Late: still running after 30 min" in log_text(run)

    run.refresh_from_db()
    run.mark_succeeded()
    assert checker.check(now=clock.advance(minutes=1))["cleared"] == 1
    assert checker.check(now=clock.advance(minutes=1))["cleared"] == 0, "cleared once"
    alert.refresh_from_db()
    assert alert.cleared_at == clock.now - dt.timedelta(minutes=1)
    assert Alert.objects.count() == 1


@pytest.mark.django_db
def test_finish_by_is_a_time_of_day_in_the_project_zone_and_a_task_overrides_the_project(add_task, project, clock):
    project.time_zone, project.finish_by = "America/New_York", dt.time(7, 30)
    project.start_grace = None  # only lateness here
    project.save()
    orders = add_task("Orders")
    late_one = add_task("Late one", finish_by=dt.time(9, 0))
    due = dt.datetime(2024, 6, 3, 6, 0, tzinfo=NEW_YORK)
    first, second = scheduled_run(orders, due), scheduled_run(late_one, due)  # queued: no worker took them
    checker = Checker()

    assert checker.check(now=dt.datetime(2024, 6, 3, 7, 29, tzinfo=NEW_YORK))["raised"] == []
    [alert] = checker.check(now=dt.datetime(2024, 6, 3, 7, 31, tzinfo=NEW_YORK))["raised"]
    assert (alert.run, alert.due_at) == (first, dt.datetime(2024, 6, 3, 7, 30, tzinfo=NEW_YORK))
    assert alert.message == "Late: not finished by 2024-06-03 07:30 EDT (expected to finish by 07:30)"
    [alert] = checker.check(now=dt.datetime(2024, 6, 3, 9, 1, tzinfo=NEW_YORK))["raised"]
    assert alert.run == second


@pytest.mark.django_db
def test_two_runs_of_one_task_with_the_same_deadline_are_each_late_once(add_task, project, clock):
    project.finish_by, project.start_grace = dt.time(9, 0), None
    project.save()
    task = add_task("Orders", max_instances=2)
    runs = [scheduled_run(task, clock.now), scheduled_run(task, clock.now + dt.timedelta(minutes=5))]
    checker = Checker()
    raised = checker.check(now=clock.set(dt.datetime(2024, 6, 3, 9, 1, tzinfo=dt.timezone.utc)))["raised"]
    assert sorted(alert.run_id for alert in raised) == [run.pk for run in runs]
    assert checker.check(now=clock.advance(minutes=1))["raised"] == []


@pytest.mark.django_db
def test_a_manual_run_is_measured_from_when_it_was_started_not_the_date_it_stands_for(add_task, project):
    project.finish_by = (timezone.now() - dt.timedelta(hours=1)).time()
    project.save()
    task = add_task("Orders")
    run = factories.run(task, trigger=Run.Trigger.MANUAL, scheduled_for=timezone.now() - dt.timedelta(days=30))
    assert Checker().check(now=timezone.now())["raised"] == [], "its deadline is tomorrow's, not 30 days ago"
    assert run.alerts.count() == 0


@pytest.mark.django_db
def test_a_scheduled_run_not_started_within_the_grace_is_missed_and_clears_when_it_ends(add_task, project, clock):
    project.start_grace = dt.timedelta(minutes=10)
    project.save()
    task = add_task("Orders")
    run = scheduled_run(task, clock.now)
    checker = Checker()
    assert checker.check(now=clock.advance(minutes=9))["raised"] == []
    [alert] = checker.check(now=clock.advance(minutes=2))["raised"]
    assert (alert.kind, alert.run) == ("missed", run)
    assert alert.message == ("Missed start: due at 2024-06-03 08:00:00 UTC, not started after 11 min (no worker "
                             "was free, or the workers are down)")
    assert checker.check(now=clock.advance(minutes=1))["raised"] == []
    drain()
    assert checker.check(now=clock.advance(minutes=1))["cleared"] == 1
    assert Alert.objects.get().cleared_at == clock.now


@pytest.mark.django_db
def test_a_run_that_started_late_and_ended_between_two_checks_is_still_missed(add_task, clock):
    task = add_task("Orders", start_grace=dt.timedelta(minutes=1))
    checker = Checker()
    checker.check(now=clock.now)
    run = scheduled_run(task, clock.now - dt.timedelta(minutes=20))
    Run.objects.filter(pk=run.pk).update(status="succeeded", started_at=clock.now, finished_at=clock.now)
    [alert] = checker.check(now=clock.advance(seconds=1))["raised"]
    assert alert.message == "Missed start: due at 2024-06-03 07:40:00 UTC, started only 20 min later"
    assert checker.check(now=clock.advance(seconds=1))["cleared"] == 1


@pytest.mark.django_db
def test_a_trigger_the_scheduler_did_not_fire_is_missed_once_then_the_late_run_takes_the_alert(
        add_task, add_trigger, project, clock):
    project.start_grace = dt.timedelta(minutes=5)
    project.save()
    task = add_task("Orders")
    add_task("Disabled", enabled=False)
    trigger = add_trigger(project, minute="0", hour="9")
    scheduling.arm(trigger, clock.now)
    due = Trigger.objects.get(pk=trigger.pk).next_run_at
    checker = Checker()
    assert checker.check(now=due + dt.timedelta(minutes=4))["raised"] == []
    [alert] = checker.check(now=due + dt.timedelta(minutes=6))["raised"]
    assert (alert.task, alert.run, alert.due_at) == (task, None, due)
    assert "nothing started after 6 min (the scheduler is late or down)" in alert.message
    assert checker.check(now=due + dt.timedelta(minutes=7))["raised"] == []

    # The scheduler comes back and runs it once, late (the project's policy): the alert gets its run.
    leader = Leadership(holder="host-a:1")
    assert leader.acquire(due + dt.timedelta(minutes=8))
    assert housekeeping.fire_due_triggers(leader, due + dt.timedelta(minutes=8)) == {trigger.pk: "started 1 run(s)"}
    assert checker.check(now=due + dt.timedelta(minutes=8))["raised"] == []
    [run] = Run.objects.all()
    alert.refresh_from_db()
    assert alert.run == run and alert.cleared_at is None and Alert.objects.count() == 1
    drain()
    assert checker.check(now=due + dt.timedelta(minutes=9))["cleared"] == 1


@pytest.mark.django_db
def test_a_start_skipped_by_the_missed_runs_policy_is_missed_until_a_later_run_ran(add_task, add_trigger, project,
                                                                                   clock):
    project.start_grace, project.missed_runs = dt.timedelta(minutes=1), "skip"
    project.save()
    task = add_task("Orders")
    trigger = add_trigger(project, minute="0", hour="9")
    scheduling.arm(trigger, clock.now)
    due = Trigger.objects.get(pk=trigger.pk).next_run_at
    scheduling.fire_trigger(trigger.pk, now=due + dt.timedelta(minutes=3), execute=False)
    [skipped] = Run.objects.all()
    assert skipped.status == "skipped"
    checker = Checker()
    [alert] = checker.check(now=due + dt.timedelta(minutes=3))["raised"]
    assert alert.run == skipped and "the project skips missed starts" in alert.message
    assert checker.check(now=due + dt.timedelta(minutes=4))["cleared"] == 0, "a skipped run never ran"
    factories.run(task, scheduled_for=due + dt.timedelta(days=1), status="succeeded", started_at=clock.now,
                  finished_at=clock.now)
    assert checker.check(now=due + dt.timedelta(minutes=5))["cleared"] == 1


@pytest.mark.django_db
def test_an_alert_goes_to_the_late_webhooks_and_emails_and_the_dashboard_of_those_who_may_see_it(
        add_task, project, owner, member, outsider, clock):
    from tasks.models import Notification

    task = add_task("Orders", max_duration=dt.timedelta(minutes=1))
    Webhook.objects.create(task=task, name="Late hook", url="http://127.0.0.1:9/h", on_late=True)
    Webhook.objects.create(project=project, name="No late", url="http://127.0.0.1:9/h", on_late=False)
    smtp = factories.connection(project.organization, "smtp", "Mail", host="127.0.0.1", port=9)
    Notification.objects.create(task=task, event="late", smtp_connection=smtp, recipients="ops@example.com")
    Notification.objects.create(task=task, event="error", smtp_connection=smtp, recipients="ops@example.com")
    run = scheduled_run(task, clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now)
    Checker().check(now=clock.advance(minutes=2))

    assert set(Delivery.objects.values_list("event", "webhook__name", "notification__event")) == {
        ("late", None, "late"), ("late", "Late hook", None)}
    assert [alert.task for alert in late_alerts_context(owner)["late_alerts"]] == [task]
    assert len(late_alerts_context(member)["late_alerts"]) == 1
    assert late_alerts_context(outsider)["late_alerts"] == []
    html = render_to_string("runs/_dashboard_late.html", late_alerts_context(member))
    assert "Orders" in html and "Late: still running after 1 min" in html and f"#{run.pk}" in html


# --- for real: the housekeeping loop, a worker and a receiver --------------------------------------------------

class HousekeepingThread:
    """The housekeeping loop's passes in a thread (every 0.2 s), counting the passes that cleared alerts."""

    def __init__(self):
        self.stop, self.cleared = threading.Event(), []
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        leadership = Leadership(holder="test-housekeeper", seconds=5)
        while not self.stop.wait(0.2):
            done = housekeeping.run_pass(leadership, django_schedules=False)
            if done and (done.get("alerts") or {}).get("cleared"):
                self.cleared.append(done["alerts"]["cleared"])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(1)  # a few more passes: nothing new may happen
        self.stop.set()
        self.thread.join(timeout=60)


def in_thread(function, *args):
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


@pytest.mark.servers  # starts its own HTTP receiver
@pytest.mark.django_db(transaction=True)
def test_for_real_a_run_past_its_deadline_raises_one_alert_one_webhook_and_clears_once(project, source_db):
    from runs.execution import execute_run
    from tests.servers.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver().start()
    task = factories.task(project, "Slow", source_connection=source_db, query=SECONDS_OF_CPU,
                          max_duration=dt.timedelta(seconds=1))
    Webhook.objects.create(task=task, name="Ops", url=receiver.url(), on_late=True, on_success=False,
                           on_failure=False, on_warning=False)
    run = factories.run(task)
    try:
        with HousekeepingThread() as loop:
            worker = in_thread(execute_run, run.pk)
            wait_for(lambda: Alert.objects.filter(run=run).exists(), timeout=30, message="the late alert")
            wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120, message="the run's end")
            wait_for(lambda: Alert.objects.filter(run=run, cleared_at__isnull=False).exists(), timeout=30,
                     message="the alert cleared")
            wait_for(lambda: len(receiver.received) >= 1, timeout=30, message="the late webhook")
        worker.join(timeout=60)
    finally:
        receiver.stop()
    [alert] = Alert.objects.all()
    assert alert.kind == "late" and alert.run_id == run.pk
    assert loop.cleared == [1], "cleared by one pass, once"
    assert [request.json["event"] for request in receiver.received] == ["late"]
    assert receiver.received[0].json["alert"]["message"] == "Late: still running after 1 s (its maximum duration)"
    assert Run.objects.get(pk=run.pk).status == "succeeded"


@pytest.mark.slow  # waits for the start grace to pass on the clock
@pytest.mark.django_db(transaction=True)
def test_for_real_a_scheduled_run_no_worker_takes_is_missed_once_and_clears_once_it_ran(add_task, project):
    from runs.execution import execute_run

    project.start_grace = dt.timedelta(seconds=1)
    project.save()
    task = add_task("Orders")
    run = scheduled_run(task, timezone.now())  # queued, and no worker is running
    with HousekeepingThread() as loop:
        alert = wait_for(lambda: Alert.objects.filter(run=run).first(), timeout=30, message="the missed alert")
        assert alert.kind == "missed" and "not started after" in alert.message
        time.sleep(1)  # more passes while it is still queued: still one alert
        assert Alert.objects.count() == 1
        in_thread(execute_run, run.pk).join(timeout=60)
        wait_for(lambda: Alert.objects.filter(cleared_at__isnull=False).exists(), timeout=30,
                 message="the alert cleared")
    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert Alert.objects.count() == 1 and loop.cleared == [1]


@pytest.mark.django_db
def test_task_details_and_the_run_page_show_the_open_alert_and_the_deadlines(add_task, project, member, outsider,
                                                                             client, clock):
    project.finish_by = dt.time(7, 30)
    project.save()
    task = add_task("Orders", max_duration=dt.timedelta(minutes=90))
    run = scheduled_run(task, clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now)
    Checker().check(now=clock.advance(hours=2))
    client.force_login(member)
    details = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Late: still running after 1 h 30 min (its maximum duration)" in details and 'id="open-alerts"' in details
    assert "not finished by 07:30 (project)" in details and "running longer than 1 h 30 min<br>" in details
    assert "missed when a scheduled run has not started 15 min after its time (project)" in details
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Late: still running after 1 h 30 min" in page
    client.force_login(outsider)
    assert client.get(f"/runs/{run.pk}/").status_code == 404

    Run.objects.filter(pk=run.pk).update(status="succeeded", finished_at=clock.now)
    Checker().check(now=clock.advance(seconds=1))
    client.force_login(member)
    assert 'id="open-alerts"' not in client.get(f"/tasks/{task.pk}/").content.decode()


@pytest.mark.django_db
def test_a_leader_that_lost_its_lease_raises_nothing_and_the_new_leader_raises_it_once(add_task, clock):
    from projects.housekeeping import LostLeadership

    task = add_task("Orders", max_duration=dt.timedelta(minutes=1))
    run = scheduled_run(task, clock.now)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=clock.now)
    old, new = Leadership(holder="host-a:1", seconds=10), Leadership(holder="host-b:2", seconds=10)
    assert old.acquire(clock.now)
    assert new.acquire(clock.advance(minutes=2))  # the old leader paused past its lease
    with pytest.raises(LostLeadership):
        Checker().check(old, now=clock.now)
    assert not Alert.objects.exists()
    first, second = Checker(), Checker()
    assert len(first.check(new, now=clock.now)["raised"]) == 1
    assert second.check(new, now=clock.advance(seconds=1))["raised"] == [], "another process, the same alert"
    assert Alert.objects.count() == 1
