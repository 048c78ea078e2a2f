"""The leak test: one known password, every way we can make things fail, and nowhere may it show up.

The password is stored in several connections, runs fail with it in every way we can cause (wrong password,
refused port, broken query, unknown database user), every connection is tested, and every page a user or an
administrator can open is rendered. Then the database (dumped and read raw), run logs, pages, Python logging
and the objects' repr are searched for the password text.
"""
import io
import json
import logging
import urllib.parse

import pytest
from django.core import serializers
from django.core.management import call_command
from django.db import connection as db
from django.urls import reverse

from connections.models import Connection
from connections import services
from runs.execution import execute_run
from runs.models import Run, RunLog
from tests.fixtures.pages import SOURCE_QUERY

LEAKY = "Leaky-P@ss-1234-XYZ"
FORMS_OF_THE_PASSWORD = {LEAKY, urllib.parse.quote(LEAKY), urllib.parse.quote_plus(LEAKY), json.dumps(LEAKY)[1:-1]}
BROKEN_KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{LEAKY}\n-----END OPENSSH PRIVATE KEY-----\n"


def assert_no_leak(place, text):
    for form in FORMS_OF_THE_PASSWORD:
        assert form not in text, f"the password shows up in {place}"


@pytest.fixture
def leaky_connections(organization, sshd, closed_port):
    def make(name, **fields):
        return Connection.objects.create(organization=organization, name=name, **fields)

    return {
        "wrong password": make("SFTP wrong password", kind="sftp", host=sshd.host, port=sshd.port,
                               username=sshd.username, secrets={"password": LEAKY}),
        "refused": make("SFTP closed port", kind="sftp", host="127.0.0.1", port=closed_port, username="nobody",
                        secrets={"password": LEAKY}),
        "broken key": make("SFTP broken key", kind="sftp", host=sshd.host, port=sshd.port, username=sshd.username,
                           secrets={"private_key": BROKEN_KEY, "passphrase": LEAKY}),
        "database user": make("PostgreSQL nobody", kind="postgresql", host="127.0.0.1", port=5432,
                              username="nobody_here", database="postgres", secrets={"password": LEAKY}),
    }


@pytest.fixture
def every_kind_refused(organization, closed_port):
    """One connection of every registered kind with secrets, all of them the password, at a closed port."""
    from connections.protocols import registry

    made = []
    for kind, protocol in registry.all_kinds().items():
        if not protocol.secret_fields:
            continue
        fields = {"host": "127.0.0.1", "port": closed_port, "username": "nobody", "database": "group/project",
                  "path": "" if "host" in protocol.fields else f"http://127.0.0.1:{closed_port}/file.csv"}
        made.append(Connection.objects.create(
            organization=organization, name=f"Every kind: {kind}", kind=kind,
            secrets={name: LEAKY for name in protocol.secret_fields if name != "private_key"},
            **{name: value for name, value in fields.items() if name in protocol.fields}))
    return made


def run_to_the_end(task, user):
    run = Run.objects.create(task=task, requested_by=user)
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def failing_runs(make_task, owner, sqlite_people, connections):
    """Each run fails at another step; the reasons are checked so the test knows it caused what it meant."""
    cases = [
        ("Login refused", sqlite_people, SOURCE_QUERY, connections["wrong password"], "Authentication failed"),
        ("Nobody listening", sqlite_people, SOURCE_QUERY, connections["refused"], "Connection refused"),
        ("Unreadable key", sqlite_people, SOURCE_QUERY, connections["broken key"], "private key could not be read"),
        ("Broken query", sqlite_people, "SELECT no_such_column FROM people", connections["wrong password"],
         "no such column"),
        ("Unknown database user", connections["database user"], "SELECT 1", connections["wrong password"],
         "nobody_here"),
    ]
    runs = []
    for name, source, query, destination, reason in cases:
        run = run_to_the_end(make_task(source, query, [(destination, "")], name=name), owner)
        assert run.status == Run.Status.FAILED and reason in run.error, (name, run.error)
        runs.append(run)
    return runs


def everything_in_the_database():
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    yield "dumpdata", dump.getvalue()
    with db.cursor() as cursor:
        for table in db.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db.ops.quote_name(table)}")
            yield f"table {table}", repr(cursor.fetchall())


def pages_of(client, runs, connections):
    urls = [reverse("connections:list"), reverse("admin:connections_connection_changelist"),
            reverse("admin:runs_run_changelist"), reverse("admin:runs_runlog_changelist")]
    for run in runs:
        urls += [reverse("tasks:detail", args=[run.task_id]), reverse("runs:detail", args=[run.pk]),
                 reverse("runs:log", args=[run.pk]), reverse("admin:runs_run_change", args=[run.pk])]
    for connection in connections:
        urls += [reverse(name, args=[connection.pk]) for name in (
            "connections:detail", "connections:edit", "connections:delete", "admin:connections_connection_change")]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        yield url, response.content.decode()
    for connection in connections:
        url = reverse("connections:test", args=[connection.pk])
        yield url, client.post(url, headers={"X-Requested-With": "fetch"}).content.decode()


# Runs and tests use worker threads (lease keeper, bounded test) that must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_a_password_never_leaks(client, staff, owner, sqlite_people, leaky_connections, every_kind_refused,
                                make_task, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    connections = list(leaky_connections.values()) + every_kind_refused

    runs = failing_runs(make_task, owner, sqlite_people, leaky_connections)
    results = [services.test_connection(connection, timeout=5) for connection in connections]

    assert not any(ok for ok, _ in results), results
    assert "Authentication failed" in results[0][1] and "Refused failed" in results[1][1]
    for connection, (_, message) in zip(connections, results):
        assert_no_leak(f"the test message of {connection.name}", message)
    for place, text in everything_in_the_database():
        assert_no_leak(place, text)
    for line in RunLog.objects.all():
        assert_no_leak(f"run log line {line}", line.message)
    for run in Run.objects.all():
        assert_no_leak(f"the error of run {run.pk}", run.error)
    client.force_login(staff)
    for url, page in pages_of(client, runs, connections):
        assert_no_leak(f"the page {url}", page)
    for connection in Connection.objects.all():
        for text in (repr(connection), str(connection), repr(connection.secrets), str(connection.secrets),
                     repr(vars(connection))):
            assert_no_leak(f"repr/str of {connection.name}", text)
    assert_no_leak("Python logging", caplog.text)
    for record in caplog.records:
        assert_no_leak("a log record's arguments", repr(record.args) + repr(record.exc_text or ""))
    out, err = capfd.readouterr()
    assert_no_leak("standard output and error", out + err)
    assert caplog.records, "logging was captured"


@pytest.mark.django_db
def test_a_dump_holds_the_ciphertext_and_loads_back(organization):
    connection = Connection.objects.create(organization=organization, name="Dumped", kind="sftp", host="h",
                                           secrets={"password": LEAKY})
    dump = io.StringIO()
    call_command("dumpdata", "connections.connection", stdout=dump)
    assert_no_leak("dumpdata", dump.getvalue())

    connection.delete()
    for restored in serializers.deserialize("json", dump.getvalue()):
        restored.save()
    assert Connection.objects.get(name="Dumped").secrets == {"password": LEAKY}


@pytest.mark.django_db
def test_parameter_values_dump_encrypted_and_load_back(project):
    import io
    import json

    from django.core.management import call_command

    from projects.models import Parameter

    Parameter.objects.create(project=project, key="api_key", value="Param-S3cret-987", sensitive=True)
    dump = io.StringIO()
    call_command("dumpdata", "projects.parameter", stdout=dump)
    assert "Param-S3cret-987" not in dump.getvalue()
    rows = json.loads(dump.getvalue())
    Parameter.objects.all().delete()
    from django.core import serializers

    for obj in serializers.deserialize("json", json.dumps(rows)):
        obj.save()
    assert Parameter.objects.get(key="api_key").value == "Param-S3cret-987"


@pytest.mark.django_db
def test_an_unsaved_connection_never_shows_its_secrets(organization):
    from connections.models import Connection

    connection = Connection(organization=organization, name="x", kind="sftp", secrets={"password": "Fresh-Pw-42"})
    assert "Fresh-Pw-42" not in repr(connection.secrets) and "Fresh-Pw-42" not in str(connection.secrets)
    assert connection.secret("password") == "Fresh-Pw-42"


@pytest.mark.django_db
def test_keys_rotate_without_losing_a_secret(settings, organization, project):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from connections.models import Connection
    from projects.models import Parameter

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ETL_FERNET_KEYS = [old]
    Connection.objects.create(organization=organization, name="c", kind="sftp", secrets={"password": "Rot-8-Pw"})
    Parameter.objects.create(project=project, key="k", value="Rot-8-Param", sensitive=True)
    settings.ETL_FERNET_KEYS = [new, old]
    call_command("rotate_secrets")
    settings.ETL_FERNET_KEYS = [new]
    assert Connection.objects.get(name="c").secret("password") == "Rot-8-Pw"
    assert Parameter.objects.get(key="k").value == "Rot-8-Param"


# --- the same password as a sensitive parameter: in file names, email subjects, a multi-line key ----------

KEY_PRINTER = '''\
import os
import sys
for line in os.environ["ETL_PARAM_DEPLOY_KEY"].splitlines():
    print(line)
print(sys.argv[1:])
'''


@pytest.mark.django_db(transaction=True)
def test_a_sensitive_parameter_never_leaks_into_names_subjects_or_the_log(client, owner, project, sqlite_people,
                                                                          local_folder, smtp_connection, mailbox,
                                                                          make_task):
    """A user typed the password into a file name and an email; a script prints a key holding it on a line.

    (The key's line is masked here as the password itself; tests/test_masking.py proves the line-by-line rule
    alone with a key no other secret covers.)"""
    from projects.models import Parameter
    from tasks.models import Notification

    Parameter.objects.create(project=project, key="token", value=LEAKY, sensitive=True)
    Parameter.objects.create(project=project, key="deploy_key", value=BROKEN_KEY, sensitive=True)
    drop, drop_folder = local_folder()
    task = make_task(sqlite_people, SOURCE_QUERY, [(drop, "")], name="Token extract", file_name="people_{token}.csv",
                     processing_location="inline", processing_script=KEY_PRINTER)
    task.publish_to_users.add(owner)
    for event, subject in (("success", "Done for {token}"), ("error", "Failed for {token}")):
        Notification.objects.create(task=task, event=event, smtp_connection=smtp_connection,
                                    recipients="ana@example.com", subject=subject, message="Token: {token}",
                                    include_output="attach")

    run = run_to_the_end(task, owner)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert (drop_folder / f"people_{LEAKY}.csv").is_file(), "the destination gets the real name"
    for line in RunLog.objects.filter(run=run):
        assert_no_leak(f"run log line {line.pk}", line.message)
    assert_no_leak("the run's error", run.error)
    [mail] = mailbox.received
    assert_no_leak("the email's subject", mail.message["Subject"])
    assert_no_leak("the email as sent", mail.message.as_string())
    client.force_login(owner)
    for url in (reverse("tasks:detail", args=[task.pk]), reverse("runs:detail", args=[run.pk]),
                reverse("runs:log", args=[run.pk]), reverse("files:hub"), reverse("tasks:preview", args=[task.pk]),
                reverse("tasks:preview", args=[task.pk]) + "?format=json"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_leak(f"the page {url}", response.content.decode())
