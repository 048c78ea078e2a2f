import concurrent.futures

from django.conf import settings
from django.utils import timezone

from connections.protocols import ConnectorError


def test_connection(connection, timeout=None):
    """Run the kind's test within a bounded time; record and return (ok, message in plain words)."""
    timeout = timeout or settings.ETL_CONNECT_TIMEOUT
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = executor.submit(_test, connection)
    try:
        ok, message = future.result(timeout=timeout + 5)
    except concurrent.futures.TimeoutError:
        ok, message = False, f"No answer within {timeout} seconds"
    finally:
        executor.shutdown(wait=False)
    type(connection).objects.filter(pk=connection.pk).update(
        last_tested_at=timezone.now(), last_test_ok=ok, last_test_message=message
    )
    return ok, message


def _test(connection):
    from django.db import connection as db_connection

    try:
        return True, connection.connector().test()
    except ConnectorError as exc:
        return False, (f"{exc.step.capitalize()} failed: " if exc.step else "") + exc.message + _no_secret_note(
            connection, exc)
    except Exception as exc:  # an unforeseen library error is still reported, never raised at the user
        return False, connection.connector().scrub(f"Unexpected error: {type(exc).__name__}: {exc}")
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
