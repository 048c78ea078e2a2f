"""The walking skeleton: a real query, a real SFTP server, the file checked byte for byte."""
import hashlib
import uuid

import pytest
from django.core.management import call_command

from connections.models import Connection
from runs.execution import execute_run
from runs.models import Run
from tests.servers import postgres as pg
from tests.servers.common import free_port
from tests import factories

pytestmark = pytest.mark.django_db

EXPECTED_CSV = (
    'id,name,amount,born,seen_at,note\n'
    '1,"Smith, John",12.50,2024-01-31,2024-02-01 08:30:00,\n'
    '2,"She said ""hi""",0.10,1999-12-31,2000-01-01 00:00:00,"line one\nline two"\n'
    '3,Zoë Ünicode 日本,-3.00,2024-02-29,2024-03-10 23:59:59,""\n'
).encode()

ROWS = [
    (1, "Smith, John", "12.50", "2024-01-31", "2024-02-01 08:30:00", None),
    (2, 'She said "hi"', "0.10", "1999-12-31", "2000-01-01 00:00:00", "line one\nline two"),
    (3, "Zoë Ünicode 日本", "-3.00", "2024-02-29", "2024-03-10 23:59:59", ""),
]
QUERY = "SELECT id, name, amount, born, seen_at, note FROM people ORDER BY id"


@pytest.fixture
def sqlite_source(organization, tmp_path):
    return factories.sqlite_source(
        organization, tmp_path / "source.sqlite3",
        "CREATE TABLE people (id INTEGER, name TEXT, amount TEXT, born TEXT, seen_at TEXT, note TEXT)",
        {"people": ROWS}, name="Local SQLite")


@pytest.fixture
def pg_source(pg_connection):
    import psycopg

    host, port, user = pg.dsn_parts()
    with psycopg.connect(host=host, port=port, user=user, dbname=pg_connection.database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS people")
        conn.execute("CREATE TABLE people (id int, name text, amount numeric(10,2), born date, "
                     "seen_at timestamp, note text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    return pg_connection


def run_now(task):
    run = Run.objects.create(task=task)
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def log_text(run):
    return "\n".join(run.log_lines.values_list("message", flat=True))


@pytest.mark.parametrize("source_fixture", ["sqlite_source", "pg_source"])
def test_rows_arrive_on_the_sftp_server_byte_for_byte(request, source_fixture, sftp_connection, sshd, make_task):
    source = request.getfixturevalue(source_fixture)
    folder = sshd.make_folder(f"{source_fixture}-{uuid.uuid4().hex[:6]}")
    sftp_connection.path = str(sshd.root)
    sftp_connection.save()
    task = make_task(source, QUERY, [(sftp_connection, folder.name)], file_name="people.csv")

    run = run_now(task)

    assert run.status == "succeeded", log_text(run)
    delivered = folder / "people.csv"
    assert delivered.read_bytes() == EXPECTED_CSV
    assert [p.name for p in delivered.parent.iterdir()] == ["people.csv"]  # no temporary file left behind
    record = run.files.get()
    assert (record.name, record.size) == ("people.csv", len(EXPECTED_CSV))
    assert record.md5 == hashlib.md5(EXPECTED_CSV).hexdigest()
    [delivery] = record.deliveries
    assert {key: delivery[key] for key in ("connection", "kind", "path", "remote_size", "verified")} == {
        "connection": "Vendor SFTP", "kind": "sftp", "path": f"{folder}/people.csv",
        "remote_size": len(EXPECTED_CSV), "verified": "size"}
    assert "Query finished: 3 rows" in log_text(run)
    assert run.rows == 3 and run.query_text == QUERY


def test_a_failing_query_fails_the_run_with_the_database_error(pg_source, sftp_connection, make_task):
    task = make_task(pg_source, "SELECT no_such_column FROM people", [(sftp_connection, "")])
    run = run_now(task)
    assert run.status == "failed"
    assert 'column "no_such_column" does not exist' in run.error
    assert 'column "no_such_column" does not exist' in log_text(run)
    assert run.finished_at is not None and run.lease_expires_at is None


def test_an_unreachable_sftp_host_fails_clearly_and_leaves_no_file(sqlite_source, organization, make_task, data_dir):
    closed_port = free_port()
    dead = Connection.objects.create(organization=organization, name="Gone vendor", kind="sftp", host="127.0.0.1",
                                     port=closed_port, username="x", secrets={"password": "pw-that-must-not-leak"})
    task = make_task(sqlite_source, QUERY, [(dead, "in")], file_name="people.csv")
    run = run_now(task)
    assert run.status == "failed"
    assert run.error == f"Connection refused by 127.0.0.1:{closed_port}: nothing is listening there"
    assert not run.files.exists()
    # The extract itself completed: it sits whole under its final name in the run folder, nothing partial.
    run_folder = data_dir / "runs" / str(task.pk) / str(run.pk)
    assert sorted(p.name for p in run_folder.iterdir()) == ["people.csv"]
    assert (run_folder / "people.csv").read_bytes() == EXPECTED_CSV
    assert "pw-that-must-not-leak" not in log_text(run)


def test_seed_demo_is_idempotent_and_its_task_runs(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    from projects.models import Organization, Project
    from tasks.models import Task

    assert Organization.objects.count() == 1 and Project.objects.count() == 1 and Task.objects.count() == 2
    task = Task.objects.get(name="Orders export")
    call_command("run_task", str(task.pk), "--sync")
    out = capsys.readouterr().out
    run = Run.objects.get()
    assert f"run {run.pk} succeeded" in out
    assert "Query finished: 5,000 rows, 11 columns" in out
    delivered = Connection.objects.get(name="Demo outbox").path + "/orders/orders.csv"
    with open(delivered, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "order_id,ordered_at,customer,email,city,product,quantity,unit_price,total,status,note"


def test_run_task_sync_exits_non_zero_when_the_run_fails(sqlite_source, make_task, capsys):
    from django.core.management.base import CommandError

    task = make_task(sqlite_source, "SELECT * FROM missing_table")
    with pytest.raises(CommandError) as failure:
        call_command("run_task", str(task.pk), "--sync")
    assert failure.value.returncode == 1
    run = Run.objects.get()
    assert f"run {run.pk} failed" in capsys.readouterr().out
    assert "no such table: missing_table" in str(failure.value)
