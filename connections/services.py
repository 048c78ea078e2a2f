import concurrent.futures

from django.conf import settings
from django.utils import timezone

from connections.protocols import ConnectorError


def test_connection(connection, timeout=None, by=""):
    """Run the kind's test within a bounded time; record it (the connection's last test, its test history, and
    the credential expiry dates the test read) and return (ok, message in plain words). `by`: who asked."""
    from connections.models import ConnectionTest

    timeout = timeout or settings.ETL_CONNECT_TIMEOUT
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = executor.submit(_test, connection)
    expiries = None
    try:
        ok, message, expiries = future.result(timeout=timeout + 5)
    except concurrent.futures.TimeoutError:
        ok, message = False, f"No answer within {timeout} seconds"
    finally:
        executor.shutdown(wait=False)
    now = timezone.now()
    recorded = {"last_tested_at": now, "last_test_ok": ok, "last_test_message": message}
    if ok:  # a failed test read nothing new: the dates already known stay
        recorded["found_expiries"] = [{"what": what, "expires_on": date.isoformat()} for what, date in expiries]
    type(connection).objects.filter(pk=connection.pk).update(**recorded)
    ConnectionTest.objects.create(connection=connection, tested_at=now, ok=ok, message=message, by=by or "")
    return ok, message


def _test(connection):
    """(ok, message, expiries seen) of one test, in the executor's thread."""
    from django.db import connection as db_connection

    connector = connection.connector()
    try:
        return True, connector.test(), connector.seen_expiries
    except ConnectorError as exc:
        return False, (f"{exc.step.capitalize()} failed: " if exc.step else "") + exc.message + _no_secret_note(
            connection, exc), []
    except Exception as exc:  # an unforeseen library error is still reported, never raised at the user
        return False, connector.scrub(f"Unexpected error: {type(exc).__name__}: {exc}"), []
    finally:
        db_connection.close()


def _no_secret_note(connection, exc):
    """A login refused on a kind that logs in with a secret, with none stored (e.g. cleared when the connection
    was pointed elsewhere), says so: the likeliest cause, and one the server's answer does not name."""
    from connections.protocols import registry

    protocol = registry.get(connection.kind)
    if (exc.step != "authentication" or protocol is None or not protocol.secret_fields
            or connection.secret_values()):
        return ""
    if "needs a" in exc.message or exc.message.startswith("Set a"):  # the protocol said it already
        return ""
    return " (no password or key is stored for this connection: enter it on its form)"
