"""The outbox: what is to be sent to the channels, sent outside the run that caused it.

A run's outcome (`queue_run_event`, called by the worker after the run is recorded, and by the reaper) and an
alert (`queue_alert`, called when alerts/deadlines.py raises it) each become one `Delivery` per channel that
wants the event: the task's, its project's and its organization's webhooks, and for alerts the task's "when
late or missed" emails. The housekeeping leader (projects/housekeeping.py) hands due deliveries to a sender
thread (`dispatch`) so its one-second loop never waits on a slow receiver. Each delivery is claimed by a
conditional UPDATE with a claim that lapses (a sender that died is replaced), so a message is sent by one sender
at a time. Every try is a `DeliveryAttempt` (status code, error) and a line in the run's log; a failed try is
retried after `RETRY_DELAYS`, and after the last one the delivery is failed. Nothing here changes a run's
status.
"""
import datetime
import logging
import threading

from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import EVENT_OF_STATUS, MAX_ATTEMPTS, Delivery, DeliveryAttempt, Webhook, retry_delay

logger = logging.getLogger(__name__)
CLAIM_SECONDS = 120  # longer than one POST can take (connect and read timeouts), so a live sender keeps its claim


def queue_run_event(run):
    """Queue the run's outcome for its webhooks; return the deliveries. Never raises (the run is recorded)."""
    try:
        event = EVENT_OF_STATUS.get(run.status)
        if event is None:
            return []
        return Delivery.objects.bulk_create([
            Delivery(event=event, task_id=run.task_id, run=run, webhook=webhook)
            for webhook in Webhook.objects.for_event(run.task, event)])
    except Exception:
        logger.exception("Could not queue the webhooks of run %s", getattr(run, "pk", None))
        return []


def queue_alert(alert):
    """Queue an alert for the task's, project's and organization's webhooks that want it and the task's late
    emails."""
    from tasks.models import Notification

    task = alert.task
    event = alert.kind  # "late" or "missed": both are events of their own
    deliveries = [Delivery(event=event, task=task, run=alert.run, alert=alert, webhook=webhook)
                  for webhook in Webhook.objects.for_event(task, event)]
    deliveries += [Delivery(event=event, task=task, run=alert.run, alert=alert, notification=notification)
                   for notification in task.notifications.filter(event=Notification.Event.LATE)]
    return Delivery.objects.bulk_create(deliveries)


def due(now):
    return Delivery.objects.filter(Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
                                   | Q(status=Delivery.Status.SENDING, claimed_until__lt=now))


def claim(delivery, now):
    """Take the delivery for this sender; False when another sender has it."""
    return Delivery.objects.filter(pk=delivery.pk, status=delivery.status, attempts=delivery.attempts).filter(
        Q(status=Delivery.Status.PENDING) | Q(claimed_until__lt=now)).update(
        status=Delivery.Status.SENDING, claimed_until=now + datetime.timedelta(seconds=CLAIM_SECONDS)) == 1


def send_due(now=None, limit=50):
    """Send the deliveries due at `now` (one try each); return how many were tried."""
    now = now or timezone.now()
    tried = 0
    for delivery in due(now).select_related("task__project", "run", "alert", "webhook", "notification")[:limit]:
        if claim(delivery, now):
            attempt(delivery, now)
            tried += 1
    return tried


def attempt(delivery, now=None):
    """One try of a claimed delivery, recorded; returns the DeliveryAttempt."""
    now = now or timezone.now()
    status_code, error, seconds = None, "", 0.0
    try:
        if delivery.webhook_id:
            from alerts import webhooks

            status_code, error, seconds = webhooks.post(delivery.webhook, delivery, now)
        else:
            from connections.protocols import ConnectorError
            from runs.notifications import send_alert_email

            try:
                send_alert_email(delivery.alert, delivery.notification)
            except ConnectorError as exc:
                error = exc.message
    except Exception as exc:  # a bug must not stop the other deliveries, nor the loop
        logger.exception("Delivery %s failed unexpectedly", delivery.pk)
        error = f"Unexpected error: {type(exc).__name__}"
    if delivery.run is not None and error:
        error = delivery.run.masker(error)
    tries = delivery.attempts + 1
    with transaction.atomic():
        record = DeliveryAttempt.objects.create(delivery=delivery, status_code=status_code, error=error,
                                                seconds=round(seconds, 3))
        if not error:
            fields = {"status": Delivery.Status.SENT, "sent_at": timezone.now()}
        elif tries >= MAX_ATTEMPTS:
            fields = {"status": Delivery.Status.FAILED}
        else:
            fields = {"status": Delivery.Status.PENDING, "next_attempt_at": now + retry_delay(tries)}
        Delivery.objects.filter(pk=delivery.pk).update(attempts=tries, claimed_until=None, **fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.attempts = tries
    _log(delivery, error, status_code, tries)
    return record


def _log(delivery, error, status_code, tries):
    if delivery.run is None:
        return
    what = f"The {delivery.get_event_display().lower()} message to {delivery.channel_name}"
    if not error:
        delivery.run.log(f"{what} was sent{f' (HTTP {status_code})' if status_code else ''}")
    elif delivery.status == Delivery.Status.FAILED:
        delivery.run.log(f"{what} was not delivered after {tries} attempts: {error}", level="warning")
    else:
        delivery.run.log(f"{what} failed (attempt {tries} of {MAX_ATTEMPTS}): {error}; trying again in "
                         f"{int(retry_delay(tries).total_seconds())} s", level="warning")


# --- the sender thread of the housekeeping leader ------------------------------------------------------------

_sender = None
_sender_lock = threading.Lock()


def dispatch(now=None):
    """Start a sender thread for the due deliveries unless one is still busy; True when one was started. Called
    by every housekeeping pass: one cheap query when nothing is due."""
    global _sender
    with _sender_lock:
        if _sender is not None and _sender.is_alive():
            return False
        if not due(now or timezone.now()).exists():
            return False
        _sender = threading.Thread(target=_send_in_thread, name="etl-outbox", daemon=True)
        _sender.start()
        return True


def _send_in_thread():
    try:
        close_old_connections()
        while send_due():
            pass
    except Exception:
        logger.exception("The outbox sender failed")
    finally:
        connection.close()  # this thread's own connection
