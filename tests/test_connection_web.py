"""Web (URL) connections against a local HTTP server: tokens, size limits, and each failure a user meets."""
import time

import pytest

from connections.protocols import ConnectorError
from connections.services import test_connection as run_connection_test
from tests.fixtures.remote_text import WEB_QUERY, WEB_TOKEN


def test_fetches_text_sending_the_token_as_bearer(web_connection, http_fake):
    assert web_connection.connector().fetch_text() == WEB_QUERY

    assert http_fake.requests[-1][2]["Authorization"] == f"Bearer {WEB_TOKEN}"


def test_custom_token_header_carries_the_raw_token(web_connection, http_fake):
    web_connection.path = http_fake.add_file("/raw/private.sql", "SELECT 2\n", auth=("PRIVATE-TOKEN", WEB_TOKEN))
    web_connection.options["token_header"] = "PRIVATE-TOKEN"

    assert web_connection.connector().fetch_text() == "SELECT 2\n"


def test_connection_test_reports_the_size(web_connection):
    ok, message = run_connection_test(web_connection)

    assert ok, message
    assert message == f"Fetched {len(WEB_QUERY.encode())} bytes (2 lines) from {web_connection.path}"


def test_declared_charset_is_used_and_utf8_is_the_default(web_connection, http_fake):
    web_connection.secrets = {}
    web_connection.path = http_fake.add_file("/raw/latin1.sql", "-- Grüße\n".encode("latin-1"),
                                             content_type="text/plain; charset=iso-8859-1")
    assert web_connection.connector().fetch_text() == "-- Grüße\n"

    web_connection.path = http_fake.add_file("/raw/plain.sql", "\ufeff-- Grüße\n".encode(), content_type="text/plain")
    assert web_connection.connector().fetch_text() == "-- Grüße\n"


def test_missing_token_is_an_authentication_failure(web_connection):
    web_connection.secrets = {}

    ok, message = run_connection_test(web_connection)

    assert not ok
    assert message == (f"Authentication failed: The server refused access to {web_connection.path} (HTTP 401): "
                       "it needs a token")


def test_wrong_token_is_refused_without_showing_it(web_connection):
    web_connection.secrets = {"token": "wrong-Token-0000"}

    with pytest.raises(ConnectorError) as error:
        web_connection.connector().fetch_text()

    assert error.value.step == "authentication"
    assert "the token was rejected" in error.value.message
    assert "wrong-Token-0000" not in error.value.message


@pytest.mark.parametrize("send_length", [True, False], ids=["declared length", "streamed"])
def test_response_over_the_size_limit_is_refused(web_connection, http_fake, send_length):
    web_connection.secrets = {}
    web_connection.path = http_fake.add_file(f"/raw/big-{send_length}.csv", b"x" * 5000, send_length=send_length)
    web_connection.options["max_bytes"] = 4096

    with pytest.raises(ConnectorError) as error:
        web_connection.connector().fetch_text()

    assert error.value.step == "fetch"
    assert error.value.message == "The response is larger than the 4096 byte limit"


def test_missing_page_is_a_fetch_failure(web_connection, http_fake):
    web_connection.path = f"{http_fake.url}/raw/nothing-here.sql"

    ok, message = run_connection_test(web_connection)

    assert not ok
    assert message == f"Fetch failed: Nothing found at {web_connection.path} (HTTP 404)"


def test_closed_port_is_refused(web_connection, make_http_fake):
    server = make_http_fake()
    web_connection.path = server.add_file("/raw/q.sql", "SELECT 1\n")
    server.stop()

    with pytest.raises(ConnectorError) as error:
        web_connection.connector().fetch_text()

    assert error.value.step == "refused"
    assert error.value.message == f"Connection refused by 127.0.0.1:{server.port}: nothing is listening there"
    assert error.value.retryable


def test_slow_server_times_out(web_connection, http_fake):
    web_connection.secrets = {}
    web_connection.path = http_fake.add_file("/raw/slow.sql", "SELECT 1\n", delay=3)
    web_connection.options["timeout"] = 1

    started = time.monotonic()
    with pytest.raises(ConnectorError) as error:
        web_connection.connector().fetch_text()

    assert time.monotonic() - started < 2.5
    assert error.value.step == "timeout"
    assert error.value.message == f"127.0.0.1:{http_fake.port} did not answer within 1 second"


def test_url_without_scheme_is_a_settings_error(web_connection):
    web_connection.path = "intranet/query.sql"

    with pytest.raises(ConnectorError, match="must start with http:// or https://"):
        web_connection.connector().fetch_text()
