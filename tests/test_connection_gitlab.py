"""GitLab connections against a local server answering the GitLab v4 endpoints python-gitlab uses."""
import os

import pytest

from connections.protocols import ConnectorError
from connections.services import test_connection as run_connection_test
from tests.fixtures.remote_text import GITLAB_FILES, GITLAB_FILES_V1, GITLAB_PROJECT
from tests.servers.http_fake import GITLAB_TOKEN


def test_fetches_the_file_at_the_configured_ref(gitlab_connection):
    assert gitlab_connection.connector().fetch_text() == GITLAB_FILES["reports/daily.sql"]


def test_fetches_a_file_at_another_ref(gitlab_connection):
    text = gitlab_connection.connector().fetch_text(file_path="reports/daily.sql", ref="v1")

    assert text == GITLAB_FILES_V1["reports/daily.sql"]


def test_sends_the_token_as_private_token_header(gitlab_connection, http_fake):
    gitlab_connection.connector().fetch_text()

    headers = http_fake.requests[-1][2]
    assert headers["PRIVATE-TOKEN"] == GITLAB_TOKEN
    assert "/api/v4/projects/analytics%2Fqueries" in http_fake.requests[-2][1]


def test_connection_test_reports_the_file_size(gitlab_connection):
    ok, message = run_connection_test(gitlab_connection)

    size = len(GITLAB_FILES["reports/daily.sql"].encode())
    assert ok, message
    assert message == f"Connected; reports/daily.sql at ref main in {GITLAB_PROJECT} has {size} bytes"


def test_lists_a_folder_recursively_across_pages(gitlab_connection, http_fake):
    paths = gitlab_connection.connector().list_tree("packages/monthly/", ref="main")

    assert paths == ["packages/monthly/README.md", "packages/monthly/lib/deep/more.sql",
                     "packages/monthly/lib/helpers.sql", "packages/monthly/main.sql"]
    tree_requests = [path for _, path, _ in http_fake.requests if "/repository/tree" in path]
    assert any("page=2" in path for path in tree_requests)  # the fake serves 3 entries a page


def test_fetches_a_folder_keeping_relative_paths(gitlab_connection, tmp_path):
    target = tmp_path / "package"

    written = gitlab_connection.connector().fetch_folder("packages/monthly", "main", target)

    assert sorted(written) == ["README.md", "lib/deep/more.sql", "lib/helpers.sql", "main.sql"]
    for relative in written:
        assert (target / relative).read_bytes() == GITLAB_FILES[f"packages/monthly/{relative}"].encode()
    assert sorted(os.listdir(target)) == ["README.md", "lib", "main.sql"]


def test_folder_paths_escaping_the_target_are_refused(gitlab_connection, http_fake, tmp_path):
    http_fake.add_project("evil/package", {"pkg/../../outside.sql": "-- escaped\n", "pkg/ok.sql": "--\n"})
    gitlab_connection.database = "evil/package"

    with pytest.raises(ConnectorError, match="would be written outside the target folder"):
        gitlab_connection.connector().fetch_folder("pkg", "main", tmp_path / "target")

    assert not (tmp_path / "outside.sql").exists()


def test_wrong_token_is_an_authentication_failure_without_the_token(gitlab_connection):
    wrong_token = "glpat-wrong-Secret-123"
    gitlab_connection.secrets = {"token": wrong_token}

    ok, message = run_connection_test(gitlab_connection)

    assert not ok
    assert message.startswith("Authentication failed: GitLab at http://127.0.0.1:")
    assert "rejected the access token (HTTP 401)" in message
    assert wrong_token not in message


def test_missing_file_names_file_ref_and_project(gitlab_connection):
    with pytest.raises(ConnectorError) as error:
        gitlab_connection.connector().fetch_text(file_path="reports/nope.sql", ref="main")

    assert error.value.step == "fetch"
    assert error.value.message == f"File reports/nope.sql not found at ref main in project {GITLAB_PROJECT}"


def test_missing_ref_is_reported_like_a_missing_file(gitlab_connection):
    with pytest.raises(ConnectorError, match="File reports/daily.sql not found at ref release-9 in project"):
        gitlab_connection.connector().fetch_text(ref="release-9")


def test_missing_folder_is_reported(gitlab_connection):
    with pytest.raises(ConnectorError, match="Folder packages/nope not found at ref main in project analytics/queries"):
        gitlab_connection.connector().list_tree("packages/nope", "main")


def test_missing_project_is_reported(gitlab_connection):
    gitlab_connection.database = "analytics/nope"

    ok, message = run_connection_test(gitlab_connection)

    assert not ok
    assert message.startswith("Fetch failed: Project analytics/nope not found on http://127.0.0.1:")


def test_closed_port_is_refused(gitlab_connection, make_http_fake):
    server = make_http_fake()
    gitlab_connection.path = server.url
    server.stop()

    ok, message = run_connection_test(gitlab_connection)

    assert not ok
    assert message == f"Refused failed: Connection refused by 127.0.0.1:{server.port}: nothing is listening there"


def test_unknown_host_name_is_a_name_resolution_failure(gitlab_connection):
    gitlab_connection.path = "http://gitlab.invalid"

    with pytest.raises(ConnectorError) as error:
        gitlab_connection.connector().fetch_text()

    assert error.value.step == "name resolution"
    assert "'gitlab.invalid' is not known" in error.value.message


def test_url_that_is_not_http_is_a_settings_error(gitlab_connection):
    gitlab_connection.path = "gitlab.example.com"

    with pytest.raises(ConnectorError, match="must be a URL") as error:
        gitlab_connection.connector().fetch_text()
    assert error.value.step == "settings"
