"""Masking everywhere: a sensitive value used in a file name, an email and a query, and a private key a script
prints, run for real, then searched for in every place a person can read (runs/masking.py).

The vendor still gets the file under its real name: only what people read is masked.
Assertions compute a bool first (`leaked = ...; assert not leaked, place`) so a failure never prints the
secret in the test report either.
"""
import datetime
import importlib
import json
import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.urls import reverse

from connections.models import Connection
from etl_portal.masking import LINE_MIN, MASK, Masker
from projects.models import Parameter
from runs.models import Run, RunFile
from tasks.models import Destination, Notification
from tests.fixtures.delivery import log_text

pytestmark = pytest.mark.django_db

MARKER = "Acct-93Q7-Zeta"
MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


def assert_absent(place, text, secrets=(MARKER,)):
    leaked = [index for index, secret in enumerate(secrets) if secret in (text or "")]
    assert not leaked, f"secret #{leaked[:1]} shows up in {place}"


def private_key_pem():
    """A fresh RSA key as PEM: 26 lines, which a script printing it spreads over 26 log lines."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def key_lines(pem):
    """The lines of a key that must never show: all but the public armour and the too-short tail."""
    return [line for line in pem.splitlines() if len(line) >= LINE_MIN and not line.startswith("-----")]


def plain_text(message):
    return message.get_body(preferencelist=("plain",)).get_content()


# --- a sensitive parameter in the file name, the email and the query, delivered over SFTP --------------

@pytest.fixture
def account_task(make_task, sqlite_orders, sftp_drop, smtp_connection, ny_project, owner):
    sftp, folder = sftp_drop
    Parameter.objects.create(project=ny_project, key="account", value=MARKER, sensitive=True)
    task = make_task(sqlite_orders, "SELECT id, day FROM orders WHERE customer <> {account} ORDER BY id",
                     file_name="orders_{account}_{yesterday:%Y%m%d}.csv")
    task.publish_to_users.add(owner)
    Destination.objects.create(task=task, connection=sftp, folder=folder.name, position=0)
    Notification.objects.create(task=task, event="success", smtp_connection=smtp_connection,
                                recipients="ana@example.com", include_output="attach",
                                subject="Orders for {account} delivered",
                                message="Account {account}: see the attached file.")
    task.sftp_folder = folder
    return task


def pages(client, run, task):
    run_file = run.files.get()
    yield "the task page", client.get(reverse("tasks:detail", args=[task.pk]))
    yield "the run page", client.get(reverse("runs:detail", args=[run.pk]))
    yield "the live log", client.get(reverse("runs:log", args=[run.pk]))
    yield "the file hub", client.get(reverse("files:hub"))
    yield "the preview page", client.get(reverse("tasks:preview", args=[task.pk]), {"date": "2024-03-15"})
    yield "the preview JSON", client.get(reverse("tasks:preview", args=[task.pk]), {"date": "2024-03-15",
                                                                                  "format": "json"})
    yield "the download's name", client.get(reverse("runs:file-download", args=[run_file.pk]))


def test_a_sensitive_value_never_shows_in_names_subjects_pages_or_the_log(account_task, mailbox, run_at, client,
                                                                         owner, admin_client):
    run = run_at(account_task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    real_name = f"orders_{MARKER}_20240314.csv"
    assert (account_task.sftp_folder / real_name).is_file(), "the vendor gets the file under its real name"
    record = run.files.get()
    assert record.name == real_name and record.deliveries[0]["path"].endswith(real_name)
    assert record.display_name == f"orders_{MASK}_20240314.csv"
    assert f"Delivered orders_{MASK}_20240314.csv to Vendor SFTP:" in log_text(run)

    for line in run.log_lines.all():
        assert_absent(f"the log line {line.pk}", line.message)
    assert_absent("the run's error", run.error)
    assert_absent("the query as run", run.query_text)
    assert MASK in run.query_text

    [mail] = mailbox.received
    assert mail.message["Subject"] == f"Orders for {MASK} delivered"
    assert f"Account {MASK}: see the attached file." in plain_text(mail.message)
    assert [part.get_filename() for part in mail.message.iter_attachments()] == [f"orders_{MASK}_20240314.csv"]
    assert_absent("the email's subject", mail.message["Subject"])
    assert_absent("the email's body", plain_text(mail.message))
    assert_absent("the email as sent", mail.message.as_string())

    client.force_login(owner)
    for place, response in pages(client, run, account_task):
        assert response.status_code == 200, place
        content = b"".join(response.streaming_content) if response.streaming else response.content
        shown = response.headers.get("Content-Disposition", "") + content.decode(errors="replace")
        if place == "the download's name":
            shown = response.headers["Content-Disposition"]  # the content is the delivered data
        assert_absent(place, shown)
        assert MASK in shown, f"{place} shows the masked value"
    for url in (reverse("admin:runs_runfile_changelist"), reverse("admin:runs_runfile_change", args=[record.pk]),
                reverse("admin:runs_run_change", args=[run.pk])):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_absent(f"the admin page {url}", response.content.decode())


def test_a_resend_shows_the_masked_name_and_still_delivers_the_real_one(account_task, mailbox, run_at, client,
                                                                         owner):
    run = run_at(account_task, MARCH_15)
    record = run.files.get()
    (account_task.sftp_folder / record.name).unlink()
    client.force_login(owner)

    response = client.post(reverse("runs:file-resend", args=[record.pk]), {"format": "json"},
                           headers={"Accept": "application/json"})

    assert response.status_code == 200 and response.json()["ok"], response.content
    assert_absent("the resend's answer", response.content.decode())
    assert (account_task.sftp_folder / record.name).is_file()
    record.refresh_from_db()
    assert all(MASK in delivery["path"] for delivery in record.shown_deliveries)
    for line in run.log_lines.all():
        assert_absent(f"the log line {line.pk}", line.message)
    page = client.get(reverse("tasks:detail", args=[account_task.pk])).content.decode()
    assert_absent("the task page after a resend", page)


def test_files_recorded_before_shown_names_are_masked_by_the_migration(make_task, sqlite_orders, project, client,
                                                                       owner):
    from django.apps import apps

    backfill = importlib.import_module("runs.migrations.0005_mask_recorded_file_names")
    Parameter.objects.create(project=project, key="account", value=MARKER, sensitive=True)
    task = make_task(sqlite_orders, "SELECT 1")
    run = Run.objects.create(task=task, status=Run.Status.SUCCEEDED)
    RunFile.objects.create(run=run, name=f"old_{MARKER}.csv", size=1, md5="0" * 32,
                           deliveries=[{"connection": "Vendor", "path": f"in/old_{MARKER}.csv"}])

    backfill.mask_recorded_names(apps, None)

    record = RunFile.objects.get(run=run)
    assert record.name == f"old_{MARKER}.csv" and record.deliveries[0]["path"] == f"in/old_{MARKER}.csv"
    client.force_login(owner)
    for url in (reverse("tasks:detail", args=[task.pk]), reverse("runs:detail", args=[run.pk])):
        page = client.get(url).content.decode()
        assert_absent(url, page)
        assert f"old_{MASK}.csv" in page and f"in/old_{MASK}.csv" in page


def test_a_file_name_stays_masked_after_the_secret_changes(account_task, mailbox, run_at, client, owner):
    run = run_at(account_task, MARCH_15)
    parameter = Parameter.objects.get(key="account")
    parameter.value = "Another-Value-77"
    parameter.save()
    client.force_login(owner)

    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()

    assert_absent("the run page after the secret changed", page)
    assert f"orders_{MASK}_20240314.csv" in page


def test_the_preview_masks_a_format_error_quoting_the_value(make_task, sqlite_orders, project, client, owner):
    Parameter.objects.create(project=project, key="account", value=MARKER, sensitive=True)
    task = make_task(sqlite_orders, "SELECT 1", file_name="x_{account:%Y}.csv")
    client.force_login(owner)

    result = client.get(reverse("tasks:preview", args=[task.pk]), {"format": "json"}).json()

    assert result["errors"], result
    assert_absent("the preview's errors", json.dumps(result))


# --- a private key printed by a script, then quoted by its exception ----------------------------------

LEAKY_SCRIPT = textwrap.dedent('''\
    import os
    key = os.environ[{variable!r}]
    for line in key.splitlines():
        print(line)
    raise RuntimeError("this key was refused:\\n" + key + "\\nat its line " + key.splitlines()[1])
''')


@pytest.mark.parametrize("holder", ["sensitive parameter", "connection secret"])
def test_a_private_key_a_script_prints_is_masked_line_by_line(holder, source_task, run_task, dropbox, project,
                                                              organization, sshd):
    pem = private_key_pem()
    if holder == "sensitive parameter":
        Parameter.objects.create(project=project, key="deploy_key", value=pem, sensitive=True)
        fields, variable = {}, "ETL_PARAM_DEPLOY_KEY"
    else:
        vault = Connection.objects.create(organization=organization, name="Key vault", kind="sftp", host=sshd.host,
                                          port=sshd.port, username=sshd.username, secrets={"private_key": pem})
        fields, variable = {"source_connection": vault}, "ETL_SOURCE_PRIVATE_KEY"
    task = source_task(name="Key printer", source_kind="script", script=LEAKY_SCRIPT.format(variable=variable),
                       destinations=[(dropbox, "")], **fields)

    run = run_task(task)

    assert run.status == "failed", run.status
    quoted_masked = f"at its line {MASK} (at script.py line 5)" in run.error
    assert quoted_masked, "the error quotes the exception's last line, masked"
    lines = key_lines(pem)
    assert len(lines) > 20
    log = log_text(run)
    assert log.count(MASK) >= len(lines), "every line the script printed is there, masked"
    assert "-----BEGIN PRIVATE KEY-----" in log, "the armour says what was printed"
    for line in run.log_lines.all():
        assert_absent(f"the log line {line.pk}", line.message, lines)
    assert_absent("the run's error", run.error, lines)


# --- the rules ----------------------------------------------------------------------------------------

def test_the_masking_rules():
    pem = private_key_pem()
    masker = Masker([pem, "42", "pw!", "S3cret&<x>", "  ", None])

    assert masker(f"key: {pem}") == f"key: {MASK}"
    assert all(masker(f"[script] {line}") == f"[script] {MASK}" for line in key_lines(pem))
    assert masker("-----END PRIVATE KEY-----") == "-----END PRIVATE KEY-----"
    assert masker(repr(pem)).count(MASK) >= len(key_lines(pem))
    # A value under 3 characters only where it stands alone; 3 and more anywhere.
    assert masker("id=42 in 2042, 420 rows") == f"id={MASK} in 2042, 420 rows"
    assert masker("apw!x") == f"a{MASK}x"
    assert masker("S3cret&<x>") == MASK and masker(None) == "" and masker("plain") == "plain"
    assert "42" not in repr(masker) and not Masker([]) and Masker([]) ("same") == "same"
