"""/health/ (django-health-check) and /metrics (Prometheus text format), both without a login.

What they show is counts and states only: no task, project, connection or user names, no error texts, no
hosts. /health/ answers 200 when every check passes, else 500, with each check's state. /metrics is open
unless ETL_METRICS_TOKEN is set; then it wants `Authorization: Bearer <token>` (compared in constant time).

Metrics are computed from the database at each scrape (a custom collector), not counted in memory: gunicorn
runs several processes and the runs are executed in others, so only the database knows the totals.
"""
import dataclasses
import datetime
import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from projects import housekeeping
from runs.models import Run, RunLog

LATENESS_WINDOW = datetime.timedelta(hours=1)


@dataclasses.dataclass
class Broker(HealthCheck):
    """The task broker (Redis, or the database's queue table) answers."""

    def run(self):
        from django_q.brokers import get_broker

        try:
            ok = get_broker().ping()
        except Exception:
            ok = False
        if not ok:
            raise ServiceUnavailable("The task broker does not answer")


@dataclasses.dataclass
class SchedulerLeader(HealthCheck):
    """A housekeeping process leads and renewed its lease in time (triggers fire, dead workers' runs end)."""

    def run(self):
        if housekeeping.leader_status() is None:
            raise ServiceUnavailable("No housekeeping leader: start `manage.py housekeeping` (serve starts one)")


@dataclasses.dataclass
class Workers(HealthCheck):
    """At least one django-q2 worker sent its heartbeat in the last 30 s."""

    def run(self):
        if not housekeeping.workers_alive():
            raise ServiceUnavailable("No worker seen in the last 30 s: start `manage.py qcluster`")


health = login_not_required(never_cache(HealthCheckView.as_view(checks=[
    "health_check.checks.Database", Broker, SchedulerLeader, Workers])))


# --- metrics -------------------------------------------------------------------------------------------------

def _quantile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class PortalCollector:
    def collect(self):
        now = timezone.now()
        runs = GaugeMetricFamily("etl_runs", "Runs by status", labels=["status"])
        counts = dict(Run.objects.values_list("status").annotate(n=Count("id")))
        for status in Run.Status.values:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        yield GaugeMetricFamily("etl_queue_depth", "Queued runs that may start now (not waiting for a retry)",
                                value=Run.objects.filter(status=Run.Status.QUEUED).exclude(
                                    not_before__gt=now).count())
        # Lateness of a trigger's fire: its run created (the fire recorded) minus its due time, last hour.
        recent = Run.objects.filter(trigger=Run.Trigger.SCHEDULE, scheduled_for__gte=now - LATENESS_WINDOW)
        late = [max(0.0, (created - due).total_seconds())
                for created, due in recent.values_list("created_at", "scheduled_for")]
        lateness = SummaryMetricFamily("etl_trigger_lateness_seconds",
                                       "Seconds from a trigger's due time to its fire, scheduled runs of the "
                                       "last hour", count_value=len(late), sum_value=sum(late))
        yield lateness
        quantiles = GaugeMetricFamily("etl_trigger_lateness_quantile_seconds",
                                      "Trigger lateness over the last hour, by quantile", labels=["quantile"])
        for q in (0.5, 0.95, 1.0):
            quantiles.add_metric([str(q)], _quantile(late, q))
        yield quantiles
        finished = Run.objects.filter(status__in=Run.FINISHED, started_at__isnull=False, finished_at__isnull=False)
        total = finished.aggregate(n=Count("id"), s=Sum(ExpressionWrapper(
            F("finished_at") - F("started_at"), output_field=DurationField())))
        yield SummaryMetricFamily("etl_run_duration_seconds", "Duration of finished runs",
                                  count_value=total["n"], sum_value=(total["s"] or datetime.timedelta()).total_seconds())
        yield CounterMetricFamily("etl_deliveries_failed", "Deliveries of a file to a destination that failed",
                                  value=RunLog.objects.filter(level="error", message__startswith="Delivery to ")
                                  .count())
        yield GaugeMetricFamily("etl_workers_alive", "django-q2 workers that sent a heartbeat in the last 30 s",
                                value=housekeeping.workers_alive(now))
        yield GaugeMetricFamily("etl_scheduler_leader_up", "1 when a housekeeping process leads",
                                value=int(housekeeping.leader_status(now=now) is not None))


@login_not_required
@never_cache
@require_safe
def metrics(request):
    token = getattr(settings, "ETL_METRICS_TOKEN", "")
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("A metrics token is required (Authorization: Bearer ...)\n", status=401,
                                content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
