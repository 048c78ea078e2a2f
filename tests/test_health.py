"""/health/ and /metrics: no login needed, counts and states only, a token when one is set."""
import datetime as dt

import pytest
from django.utils import timezone

from projects import housekeeping
from projects.housekeeping import Leadership
from projects.models import LeaderLease
from runs import queueing
from runs.models import Run

# transaction=True: the checks run in threads of their own, on database connections of their own.
pytestmark = pytest.mark.django_db(transaction=True)


def checks(response):
    """{check name: "OK" or its message} from the JSON answer, whose keys are the checks' reprs."""
    return {key.split("(")[0]: value for key, value in response.json().items()}


def test_health_names_what_is_missing_and_turns_healthy_with_a_leader_and_a_worker(client):
    # A cluster another test module ran may have beaten just before it stopped: start with none.
    LeaderLease.objects.all().delete()
    response = client.get("/health/", HTTP_ACCEPT="application/json")
    body = checks(response)
    assert response.status_code == 500, "a portal without leader or workers is not healthy"
    assert body["Database"] == "OK" and body["Broker"] == "OK"
    assert "No housekeeping leader" in body["SchedulerLeader"] and "No worker seen" in body["Workers"]
    assert Leadership(holder="host-a:1").acquire()
    housekeeping.beat("worker:host-a:99")
    response = client.get("/health/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and set(checks(response).values()) == {"OK"}
    assert "host-a" not in response.content.decode(), "no host names for anonymous visitors"


def test_a_silent_worker_stops_counting_after_30_seconds(client):
    LeaderLease.objects.all().delete()
    assert Leadership(holder="host-a:1").acquire()
    housekeeping.beat("worker:host-a:99", now=timezone.now() - dt.timedelta(seconds=31))
    assert client.get("/health/", HTTP_ACCEPT="application/json").status_code == 500


def test_metrics_count_runs_without_names_or_secrets(client, add_task):
    LeaderLease.objects.all().delete()
    task = add_task("Payroll export secret-name")
    queueing.enqueue_run(task)
    done = queueing.enqueue_run(task)
    Run.objects.filter(pk=done.pk).update(status="succeeded", started_at=timezone.now() - dt.timedelta(seconds=4),
                                          finished_at=timezone.now())
    done.log("Delivery to SFTP failed: password=hunter2 refused", level="error")
    response = client.get("/metrics")
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert 'etl_runs{status="queued"} 1.0' in text and 'etl_runs{status="succeeded"} 1.0' in text
    assert "etl_queue_depth 1.0" in text and "etl_deliveries_failed_total 1.0" in text
    assert "etl_run_duration_seconds_count 1.0" in text and "etl_run_duration_seconds_sum 4." in text
    assert "etl_scheduler_leader_up 0.0" in text and "etl_workers_alive 0.0" in text
    assert "Payroll" not in text and "hunter2" not in text and "SFTP" not in text


def test_metrics_want_the_token_when_one_is_set(client, settings):
    settings.ETL_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.post("/metrics").status_code == 405, "read-only"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and b"etl_runs" in response.content
