"""A maintenance window on a real `manage.py qcluster` with the housekeeping loop: a per-second trigger keeps
firing during a four-second window on the task's source; the one run queued in it waits, every later fire in the
window is folded into it, and it starts once the window is over and succeeds."""
import datetime as dt

import pytest
from django.utils import timezone

from tests.fixtures.scheduling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
WINDOW_SECONDS = 4


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_run_queued_during_a_window_starts_after_it_once_and_succeeds(qcluster, housekeeper, project, add_task,
                                                                         add_trigger, source_db):
    task = add_task("Orders")
    # Open until further notice, then closed WINDOW_SECONDS after the first run was queued in it (the
    # housekeeping loop may take a few seconds to lead).
    window = source_db.maintenance_windows.create(kind="once", starts_at=timezone.now(),
                                                  ends_at=timezone.now() + dt.timedelta(minutes=5), time_zone="UTC")
    trigger = add_trigger(project, second="*")
    queued = wait_for(lambda: task.runs.order_by("id").first(), timeout=30,
                      message=lambda: f"a scheduled run\n{qcluster.log()[-2000:]}")
    end = queued.created_at + dt.timedelta(seconds=WINDOW_SECONDS)
    window.ends_at = end
    window.save()
    first = wait_for(lambda: task.runs.filter(status="succeeded").order_by("id").first(), timeout=30,
                     message=lambda: f"the waiting run to succeed\n{qcluster.log()[-2000:]}")
    trigger.enabled = False
    trigger.save()
    during = list(task.runs.filter(created_at__lt=end).order_by("id"))
    assert first.pk == queued.pk
    assert [run.pk for run in during] == [first.pk], "one run for every fire during the window, no skipped ones"
    assert first.scheduled_for < end and first.started_at >= end, "queued in the window, started after it"
    lines = [line.message for line in first.log_lines.order_by("id")]
    folded = [line for line in lines if "folded into this run" in line]
    assert len(folded) >= 2, lines
    assert all("maintenance window of Orders DB" in line for line in folded)
    assert first.rows == 3
