"""Queries and scripts loaded at run time from SFTP, FTP, SMB, a local folder, GitLab or the web, and the
cached copy used (with a warning) when GitLab or the web cannot be reached."""
import textwrap

import pytest

from connections.models import Connection
from runs import text_locations
from tests.fixtures.remote_text import WEB_TOKEN
from tests.fixtures.sources import log_text
from tests.servers.http_fake import GITLAB_TOKEN

pytestmark = pytest.mark.django_db

QUERY = "SELECT id, name FROM people WHERE id <= {upto} ORDER BY id -- Grüße\n"
EXPECTED = "id,name\n1,Ada\n2,Grace\n"


@pytest.fixture
def people(sqlite_db, project):
    from projects.models import Parameter

    sqlite_db.execute("CREATE TABLE people (id INTEGER, name TEXT);"
                      "INSERT INTO people VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Linus');")
    Parameter.objects.create(project=project, key="upto", value="2")
    return sqlite_db


@pytest.fixture
def store_with_query(request, organization, tmp_path):
    """(connection, path of the query file on it) for a file store of the kind asked for."""
    kind = request.param
    if kind == "sftp":
        server = request.getfixturevalue("sshd")
        connection = request.getfixturevalue("sftp_connection")
        connection.path = str(server.root)
        connection.save()
    elif kind == "ftp":
        server = request.getfixturevalue("ftpd")
        connection = request.getfixturevalue("ftp_connection")
    elif kind == "smb":
        server = request.getfixturevalue("smbd")
        connection = request.getfixturevalue("smb_connection")
    else:
        root = tmp_path / "queries-root"
        root.mkdir()
        server = type("Folder", (), {"make_folder": lambda self, name: (root / name).mkdir() or root / name})()
        connection = Connection.objects.create(organization=organization, name="Query folder", kind="local",
                                               path=str(root))
    folder = server.make_folder(f"queries-{tmp_path.name[-12:]}")
    (folder / "people.sql").write_bytes(QUERY.encode())
    return connection, f"{folder.name}/people.sql"


@pytest.mark.parametrize("store_with_query", ["sftp", "ftp", "smb", "local"], indirect=True)
def test_a_query_is_loaded_from_a_file_store(store_with_query, people, source_task, run_task, dropbox):
    connection, path = store_with_query
    task = source_task(source_connection=people, text_location="remote", text_connection=connection, text_path=path,
                       file_name="people.csv", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert f"Loaded the query from {connection.name}: {path}" in log_text(run)
    assert (dropbox.folder / "people.csv").read_text() == EXPECTED


def gitlab_for(organization, server, project="analytics/etl", name="ETL repository"):
    server.add_project(project, {"sql/people.sql": QUERY, "sql/other.sql": "SELECT 1"}, ref="main")
    server.add_project(project, {"sql/people.sql": QUERY.replace("<=", "<")}, ref="v1")
    return Connection.objects.create(organization=organization, name=name, kind="gitlab", path=server.url,
                                     database=project, options={"ref": "main", "timeout": 3},
                                     secrets={"token": GITLAB_TOKEN})


def web_for(organization, server, name="Intranet"):
    url = server.add_file("/raw/people.sql", QUERY, auth=("Authorization", f"Bearer {WEB_TOKEN}"))
    return Connection.objects.create(organization=organization, name=name, kind="web", path=url,
                                     options={"timeout": 3}, secrets={"token": WEB_TOKEN})


@pytest.mark.parametrize("path, expected", [("sql/people.sql", EXPECTED), ("sql/people.sql@v1", "id,name\n1,Ada\n")])
def test_a_query_is_loaded_from_gitlab_at_a_ref(path, expected, http_fake, organization, people, source_task,
                                                run_task, dropbox):
    task = source_task(source_connection=people, text_location="remote", text_path=path, file_name="people.csv",
                       text_connection=gitlab_for(organization, http_fake), destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "people.csv").read_text() == expected


def test_a_query_is_loaded_from_the_web_with_a_token(http_fake, organization, people, source_task, run_task,
                                                      dropbox):
    task = source_task(source_connection=people, text_location="remote", text_connection=web_for(organization,
                                                                                                  http_fake),
                       file_name="people.csv", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "people.csv").read_text() == EXPECTED


@pytest.mark.parametrize("kind", ["web", "gitlab"])
def test_the_cached_copy_is_used_when_the_server_is_down(kind, make_http_fake, organization, people, source_task,
                                                         run_task, dropbox, data_dir):
    server = make_http_fake()
    connection = web_for(organization, server) if kind == "web" else gitlab_for(organization, server)
    task = source_task(source_connection=people, text_location="remote", text_connection=connection,
                       text_path="sql/people.sql" if kind == "gitlab" else "", cache_remote_text=True,
                       file_name="people.csv", destinations=[(dropbox, "")])
    first = run_task(task)
    assert first.status == "succeeded", log_text(first)
    cached = data_dir / "cache" / "text" / str(task.pk) / "source" / "files" / "people.sql"
    assert cached.read_text() == QUERY  # the text before parameters were put in

    port = server.port
    server.stop()
    (dropbox.folder / "people.csv").unlink()
    second = run_task(task)

    assert second.status == "warning", log_text(second)
    warning = second.log_lines.get(level="warning").message
    assert warning.startswith(f"The query could not be fetched from {connection.name}, so the run used the cached "
                              "copy from ")
    assert warning.endswith(f"because: Connection refused by 127.0.0.1:{port}: nothing is listening there")
    assert second.error == warning
    assert (dropbox.folder / "people.csv").read_text() == EXPECTED


def test_without_the_cache_option_a_failed_fetch_fails_the_run(make_http_fake, organization, people, source_task,
                                                                run_task):
    server = make_http_fake()
    task = source_task(source_connection=people, text_location="remote", text_connection=web_for(organization, server))
    server.stop()
    run = run_task(task)
    assert run.status == "failed"
    assert run.error == f"Connection refused by 127.0.0.1:{server.port}: nothing is listening there"


def test_a_cached_copy_of_another_file_is_never_used(make_http_fake, organization, people, source_task, run_task):
    server = make_http_fake()
    connection = gitlab_for(organization, server)
    task = source_task(source_connection=people, text_location="remote", text_connection=connection,
                       text_path="sql/people.sql", cache_remote_text=True)
    assert run_task(task).status == "succeeded"
    server.stop()
    task.text_path = "sql/other.sql"
    task.save()
    run = run_task(task)
    assert run.status == "failed" and run.error.startswith("Connection refused")


def test_the_preview_loads_the_remote_query(http_fake, organization, people, source_task):
    from runs import sources

    task = source_task(source_connection=people, text_location="remote",
                       text_connection=web_for(organization, http_fake, name="Preview web"))
    assert sources.preview_query(task, {"upto": "2"}) == (
        QUERY, "SELECT id, name FROM people WHERE id <= '2' ORDER BY id -- Grüße\n")


# --- scripts -------------------------------------------------------------------------------------------

PACKAGE = {
    "etl/package/main.py": "import sys\nfrom helpers import shout\nprint(shout(open(sys.argv[1]).read()))\n",
    "etl/package/helpers.py": "def shout(text):\n    return text.upper().strip()\n",
    "etl/package/requirements.txt": "# nothing needed\n",
    "etl/other.py": "raise SystemExit('not this one')\n",
}


def test_a_processing_script_package_comes_from_a_gitlab_folder(http_fake, organization, people, source_task,
                                                                 run_task):
    http_fake.add_project("analytics/scripts", PACKAGE)
    gitlab = Connection.objects.create(organization=organization, name="Scripts repo", kind="gitlab",
                                       path=http_fake.url, database="analytics/scripts",
                                       options={"timeout": 3}, secrets={"token": GITLAB_TOKEN})
    task = source_task(source_connection=people, query="SELECT name FROM people WHERE id = 1",
                       processing_location="remote", processing_connection=gitlab, processing_path="etl/package",
                       processing_entry="main.py")
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert "Loaded the processing script from Scripts repo: etl/package -> main.py" in log_text(run)
    assert "from requirements.txt" in log_text(run)
    assert "[main.py] NAME\n[main.py] ADA" in log_text(run)


def test_a_script_source_comes_from_sftp_with_its_requirements(sshd, sftp_connection, source_task, run_task,
                                                               dropbox, tmp_path):
    folder = sshd.make_folder(f"scripts-{tmp_path.name[-12:]}")
    (folder / "make_report.py").write_text(textwrap.dedent('''\
        with open("report.txt", "w") as out:
            out.write("made remotely\\n")
        print(["report.txt"])
    '''))
    (folder / "requirements.txt").write_text("\n")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    task = source_task(source_kind="script", text_location="remote", text_connection=sftp_connection,
                       text_path=f"{folder.name}/make_report.py", destinations=[(dropbox, "")])
    run = run_task(task)
    assert run.status == "succeeded", log_text(run)
    assert (dropbox.folder / "report.txt").read_text() == "made remotely\n"
    assert "from requirements.txt" in log_text(run)


def test_split_ref():
    assert text_locations.split_ref("/sql/a.sql@release/2024") == ("sql/a.sql", "release/2024")
    assert text_locations.split_ref("sql/a.sql@v1") == ("sql/a.sql", "v1")
    assert text_locations.split_ref("sql/a.sql") == ("sql/a.sql", None)
