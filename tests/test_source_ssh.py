"""The SSH command source: output streamed to the run log, the exit status decides, a timeout ends a hung
command, parameters in the command, the command loaded from a location."""
import time

import pytest

from connections.models import Connection
from tests.fixtures.sources import log_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def region(project):
    from projects.models import Parameter

    return Parameter.objects.create(project=project, key="region", value="EMEA")


def test_output_streams_to_the_log_and_status_zero_succeeds(ssh_connection, source_task, run_task, region):
    command = 'echo "first {region}"; echo "to stderr" >&2; echo "task $ETL_TASK_NAME"; exit 0'
    task = source_task(name="Nightly batch", source_kind="ssh", source_connection=ssh_connection, command=command)
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    log = log_text(run)
    assert "[stdout] first EMEA" in log and "[stdout] task Nightly batch" in log
    assert run.log_lines.get(message="[stderr] to stderr").level == "warning"
    assert "The command finished with exit status 0" in log
    assert not run.files.exists()


def test_a_non_zero_exit_status_fails_the_run_with_the_last_error_lines(ssh_connection, source_task, run_task):
    task = source_task(source_kind="ssh", source_connection=ssh_connection,
                       command="echo working; echo 'disk full' >&2; exit 4")
    run = run_task(task)
    assert (run.status, run.error) == ("failed", "The command failed with exit status 4: disk full")


def test_a_timeout_ends_a_hung_command(ssh_connection, source_task, run_task):
    task = source_task(source_kind="ssh", source_connection=ssh_connection, command="echo started; sleep 120",
                       timeout_seconds=2)
    started = time.monotonic()
    run = run_task(task)
    assert time.monotonic() - started < 20
    assert run.status == "failed"
    assert run.error == "Timed out: the run took longer than its limit of 2 seconds and was stopped"
    assert "[stdout] started" in log_text(run)


def test_stdout_becomes_the_output_file_when_the_task_names_one(ssh_connection, source_task, run_task, dropbox):
    task = source_task(source_kind="ssh", source_connection=ssh_connection, file_name="listing.txt",
                       command="printf 'a\\nb\\n'; echo noise >&2", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "listing.txt").read_text() == "a\nb\n"


def test_the_command_is_loaded_from_the_web(http_fake, organization, ssh_connection, source_task, run_task):
    url = http_fake.add_file("/raw/nightly.sh", "echo 'from the web'\n")
    web = Connection.objects.create(organization=organization, name="Scripts site", kind="web", path=url,
                                    options={"timeout": 3})
    task = source_task(source_kind="ssh", source_connection=ssh_connection, text_location="remote",
                       text_connection=web)
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert "Loaded the command from Scripts site" in log_text(run)
    assert "[stdout] from the web" in log_text(run)


def test_a_source_that_is_not_an_ssh_server_is_refused(sqlite_db, source_task, run_task):
    task = source_task(source_kind="ssh", source_connection=sqlite_db, command="true")
    run = run_task(task)
    assert (run.status, run.error) == ("failed", "Local SQLite is a SQLite connection, not an SSH server")
