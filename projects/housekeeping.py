"""Housekeeping outside the run queue: one leader across all hosts fires due triggers, reaps runs whose worker
died, wakes workers for stalled runs, raises and clears late and missed alerts (alerts/deadlines.py), hands due
webhook and alert messages to a sender thread (alerts/outbox.py) and runs django-q2's scheduler (pending
retries), every second.

Why a process of its own (`manage.py housekeeping`, started by `serve`) rather than django-q2 tasks or its
guard loop: a task waits in the same queue as runs, so with every worker busy a dead worker's runs stayed
"running" for minutes and triggers fired late; django-q2's guard loop looks at schedules only every 30 s and is
not ours to extend. A separate process is never busy with a run, and is small (no workers of its own).

Leadership: a row in `LeaderLease`, taken by a conditional UPDATE once it expired and renewed by its holder each
pass, so it works alike on SQLite and PostgreSQL. A pass fires triggers in a transaction that first renews the
lease *conditionally on this leader's token* (`fence`): a leader that lost the lease
(paused longer than the lease, cut off from the database) finds zero rows and changes nothing. On PostgreSQL
that UPDATE also locks the row, so a takeover waits until the fenced transaction is over.

Exactly once per due time: a fire advances the trigger's `next_run_at` by a conditional UPDATE on the old value,
in the same transaction that starts its runs (projects/scheduling.py `_fire`).
"""
import datetime
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from alerts import deadlines, outbox
from projects import scheduling, triggers
from projects.models import LeaderLease, Trigger
from runs import execution

logger = logging.getLogger(__name__)
LEADER = "housekeeping"
TICK_OFFSET = 0.02  # just after each whole second, when per-second fire times fall due


class LostLeadership(Exception):
    pass


# This process's alert checker: it remembers the newest run it looked at (alerts/deadlines.py).
alert_checker = deadlines.Checker()


def lease_seconds():
    return float(getattr(settings, "ETL_LEADER_LEASE_SECONDS", 10))


def interval_seconds():
    return float(getattr(settings, "ETL_HOUSEKEEPING_SECONDS", 1)) or 1.0


class Leadership:
    """This process's claim on the housekeeping lease."""

    def __init__(self, name=LEADER, holder=None, seconds=None):
        self.name = name
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.seconds = seconds or lease_seconds()
        self.token = None

    def _expiry(self, now):
        return now + datetime.timedelta(seconds=self.seconds)

    def acquire(self, now=None):
        """Renew the lease if this process holds it, else take it if it expired. True when this process leads."""
        now = now or timezone.now()
        if self.token is not None and self._renew(now):
            return True
        self.token = None
        try:
            LeaderLease.objects.get_or_create(name=self.name, defaults={"expires_at": now - datetime.timedelta(
                seconds=1)})
        except IntegrityError:  # another process created it at the same moment
            pass
        lease = LeaderLease.objects.filter(name=self.name).first()
        if lease is None or lease.expires_at > now:
            return False
        token = lease.token + 1
        # Conditional on the token read: of two processes taking an expired lease at once, one wins.
        if LeaderLease.objects.filter(name=self.name, token=lease.token, expires_at__lte=now).update(
                holder=self.holder, token=token, expires_at=self._expiry(now), renewed_at=now):
            self.token = token
            logger.info("Housekeeping leader is now %s (token %s)", self.holder, token)
            return True
        return False

    def _renew(self, now):
        return bool(LeaderLease.objects.filter(name=self.name, holder=self.holder, token=self.token,
                                               expires_at__gt=now).update(expires_at=self._expiry(now),
                                                                          renewed_at=now))

    def fence(self, now=None):
        """Inside a transaction: renew conditionally on this leader's token, or raise LostLeadership."""
        if self.token is None or not self._renew(now or timezone.now()):
            self.token = None
            raise LostLeadership(self.holder)

    def release(self, now=None):
        if self.token is not None:
            LeaderLease.objects.filter(name=self.name, holder=self.holder, token=self.token).update(
                expires_at=(now or timezone.now()) - datetime.timedelta(seconds=1))
            self.token = None


def leader_status(name=LEADER, now=None):
    """(holder, seconds since the last renewal) of a live leader, or None: for /health/ and /metrics."""
    now = now or timezone.now()
    lease = LeaderLease.objects.filter(name=name, expires_at__gt=now).first()
    if lease is None or not lease.holder:
        return None
    return lease.holder, (now - (lease.renewed_at or now)).total_seconds()


# --- workers' heartbeats --------------------------------------------------------------------------------------

WORKER_PREFIX = "worker:"
HEARTBEAT_SECONDS = 10
_heartbeat_started = threading.Event()


def start_heartbeat(**kwargs):
    """In a django-q2 worker (post_spawn): say every 10 s that it is alive, for /health/ and /metrics. A thread,
    so a worker busy with a six-hour run still counts as alive; django-q2's own Stat needs a shared cache the
    ORM broker does not have."""
    # django-q2's sync mode sends post_spawn in the calling process (a web request, a test): no worker there.
    if _heartbeat_started.is_set() or multiprocessing.current_process().name == "MainProcess":
        return
    _heartbeat_started.set()
    # Runs yield the CPU to the housekeeping loop and the web pages when the cores are all busy (scripts and
    # queries started from here inherit it); raising one's own niceness needs no privilege.
    try:
        os.nice(int(getattr(settings, "ETL_WORKER_NICE", 5)))
    except OSError:
        pass
    threading.Thread(target=_heartbeat_loop, name="etl-worker-heartbeat", daemon=True).start()


def beat(name=None, now=None):
    now = now or timezone.now()
    name = name or f"{WORKER_PREFIX}{socket.gethostname()}:{os.getpid()}"
    expires = now + datetime.timedelta(seconds=3 * HEARTBEAT_SECONDS)
    if not LeaderLease.objects.filter(name=name).update(holder=name, expires_at=expires, renewed_at=now):
        LeaderLease.objects.create(name=name, holder=name, expires_at=expires, renewed_at=now)


def _heartbeat_loop():
    while True:
        try:
            beat()
        except Exception:  # a missed beat shows on /health/; the worker itself carries on
            logger.warning("Worker heartbeat failed", exc_info=True)
            connection.close()
        time.sleep(HEARTBEAT_SECONDS)


def workers_alive(now=None):
    return LeaderLease.objects.filter(name__startswith=WORKER_PREFIX, expires_at__gt=now or timezone.now()).count()


def forget_dead_workers(now=None):
    """Heartbeats of workers gone for an hour are removed, so the table stays small."""
    cutoff = (now or timezone.now()) - datetime.timedelta(hours=1)
    LeaderLease.objects.filter(name__startswith=WORKER_PREFIX, expires_at__lt=cutoff).delete()


# --- one pass ------------------------------------------------------------------------------------------------

def due_triggers(now):
    """Enabled triggers whose fire time, plus their jitter, has come."""
    due = []
    for trigger in Trigger.objects.filter(enabled=True, next_run_at__lte=now).select_related(
            "project", "system_job").order_by("next_run_at", "pk"):
        if trigger.next_run_at + triggers.jitter(trigger, trigger.next_run_at) <= now:
            due.append(trigger)
    return due


def fire_due_triggers(leadership, now=None):
    """Fire every due trigger once, fenced by the leadership; return {trigger id: result}.

    One transaction for the whole batch, fenced once at its start, with a savepoint per trigger (a trigger that
    fails is rolled back alone): ten triggers due in one second cost one commit, not ten."""
    from django_q.tasks import async_task

    now = now or scheduling.clock()
    due = due_triggers(now)
    results = {}
    if not due:
        return results
    with transaction.atomic():
        leadership.fence(now)
        for trigger in due:
            try:
                result = scheduling.fire_trigger(trigger.pk, now=now, execute=False, run_job=False)
            except Exception:
                logger.exception("Trigger %s could not be fired", trigger.pk)
                continue
            if isinstance(result, tuple):  # a system job: a worker runs it, the loop must not wait for it
                transaction.on_commit(lambda job=result: async_task(scheduling.RUN_SYSTEM_JOB, *job,
                                                                    group="system", save=False))
                result = f"job {result[0]} sent to a worker"
            results[trigger.pk] = result
    return results


def run_pass(leadership, broker=None, now=None, django_schedules=True):
    """One housekeeping pass if this process leads; returns what it did, or None when another process leads.
    `django_schedules=False` skips django-q2's scheduler, which closes the database connection (tests)."""
    from django_q.scheduler import scheduler

    if not leadership.acquire():
        return None
    done = {"fired": fire_due_triggers(leadership, now)}
    done["reaped"] = execution.reap_interrupted_runs(now=now)  # also kicks stalled runs
    try:
        done["alerts"] = alert_checker.check(leadership, now)
    except LostLeadership:
        raise
    except Exception:  # alerts must not stop the triggers and the reaper of the next pass
        logger.exception("The late and missed run check failed")
    outbox.dispatch(now)  # in a thread of its own: a slow webhook never holds this loop up
    if int(time.time()) % 60 == 0:
        forget_dead_workers(now)
    # Pending retries and any other django-q2 schedule, at once rather than at django-q2's 30 s cycle.
    if django_schedules:
        scheduler(broker=broker)
    return done


def serve_forever(stop=None, interval=None):
    """The loop of `manage.py housekeeping`: a pass just after each whole second until `stop` is set."""
    from django_q.brokers import get_broker

    stop = stop or threading.Event()
    interval = interval or interval_seconds()
    leadership = Leadership()
    broker = get_broker()
    was_leader = False
    try:
        while not stop.wait(interval - (time.time() % interval) + TICK_OFFSET):
            try:
                close_old_connections()
                started = time.monotonic()
                done = run_pass(leadership, broker)
                took = time.monotonic() - started
                if took > interval:
                    logger.warning("A housekeeping pass took %.1f s (%s trigger(s) fired)", took,
                                   len((done or {}).get("fired", ())))
                if (done is not None) != was_leader:
                    was_leader = done is not None
                    logger.info("Housekeeping on %s: %s", leadership.holder,
                                "leading" if was_leader else "standing by (another process leads)")
            except LostLeadership:
                logger.warning("Housekeeping on %s lost the lead; standing by", leadership.holder)
            except Exception:
                logger.exception("The housekeeping pass failed")
                connection.close()
    finally:
        try:
            leadership.release()  # the next process takes over at once instead of after the lease
        except Exception:
            pass

