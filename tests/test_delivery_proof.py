"""Delivery proof: sizes and checksums read back from real servers, marker files, acknowledgement files, the
run's manifest (page download and email attachment)."""
import datetime
import hashlib
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from connections.protocols import local as local_protocol
from runs.models import RunFile
from tasks.forms import DestinationFormSet
from tasks.models import Destination, Notification
from tests.fixtures.delivery import ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


def destination(task, connection, folder="", **fields):
    return Destination.objects.create(task=task, connection=connection, folder=folder, **fields)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_each_server_reports_what_landed_and_the_manifest_lists_it(make_task, sqlite_orders, sftp_drop,
                                                                    ftp_connection, ftpd, smb_connection, smbd,
                                                                    local_folder, ny_project, run_at, owner,
                                                                    client_of):
    sftp, sftp_folder = sftp_drop
    ftp_folder = ftpd.make_folder(f"in-{uuid.uuid4().hex[:6]}")
    smb_folder = smbd.make_folder(f"in-{uuid.uuid4().hex[:6]}")
    archive, _ = local_folder("Archive")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, sftp, sftp_folder.name)
    destination(task, ftp_connection, ftp_folder.name)
    destination(task, smb_connection, smb_folder.name)
    destination(task, archive)

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    record = RunFile.objects.get(run=run)
    assert record.sha256 == sha256(record.stored_path)
    proofs = {d["connection"]: (d["remote_size"], d["verified"]) for d in record.deliveries}
    # OpenSSH and Samba report sizes only; the FTP server and a local folder can hash the file themselves.
    assert proofs == {"Vendor SFTP": (record.size, "size"), "Vendor FTP": (record.size, "size and sha256"),
                      "Finance share": (record.size, "size"), "Archive": (record.size, "size and sha256")}
    assert f"Delivered orders.csv to Vendor FTP:{ftp_folder.name}/orders.csv (size and sha256 checked)" in \
        log_text(run)

    response = client_of(owner).get(f"/runs/{run.pk}/manifest.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-manifest.json"'
    manifest = json.loads(response.content)
    assert (manifest["run"], manifest["task"], manifest["status"]) == (run.pk, task.name, "succeeded")
    [entry] = manifest["files"]
    assert (entry["name"], entry["size"], entry["md5"], entry["sha256"]) == (
        "orders.csv", record.size, record.md5, record.sha256)
    assert [(d["connection"], d["remote_size"]) for d in entry["deliveries"]] == [
        ("Vendor SFTP", record.size), ("Vendor FTP", record.size), ("Finance share", record.size),
        ("Archive", record.size)]
    assert "Delivery manifest (JSON)" in client_of(owner).get(f"/runs/{run.pk}/").content.decode()


def test_a_stranger_cannot_read_the_manifest(make_task, sqlite_orders, local_folder, ny_project, run_at, client_of,
                                             outsider):
    connection, _ = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv")
    run = run_at(task, MARCH_15)
    assert client_of(outsider).get(f"/runs/{run.pk}/manifest.json").status_code == 404


def test_a_file_that_lands_damaged_is_removed_and_the_run_fails(make_task, sqlite_orders, local_folder, ny_project,
                                                                run_at, monkeypatch):
    connection, folder = local_folder("Vendor")
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv")

    def truncating_upload(session, local_path, remote_path):  # a storage that loses the end of what it is given
        session.resolve(remote_path).write_bytes(Path(local_path).read_bytes()[:10])

    monkeypatch.setattr(local_protocol.LocalSession, "upload", truncating_upload)
    run = run_at(task, MARCH_15)

    assert run.status == "failed"
    assert "orders.csv holds 10 bytes on the server after the upload, but" in run.error
    assert "the file was removed again" in run.error
    assert list(folder.iterdir()) == []  # neither the damaged file nor a temporary one is left
    assert not RunFile.objects.filter(run=run).exists()


def test_marker_files_follow_the_files(make_task, sqlite_orders, sftp_drop, local_folder, ny_project, run_at):
    sftp, sftp_folder = sftp_drop
    archive, archive_folder = local_folder("Archive")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv", write_md5_file=True)
    destination(task, sftp, sftp_folder.name, marker=Destination.Marker.PER_FILE)
    destination(task, archive, marker=Destination.Marker.NAMED, marker_name="READY_{yesterday:%Y%m%d}")

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    # The .md5 sidecar travels with its file and gets no marker of its own.
    assert sorted(path.name for path in sftp_folder.iterdir()) == ["orders.csv", "orders.csv.done",
                                                                   "orders.csv.md5"]
    assert (sftp_folder / "orders.csv.done").read_bytes() == b""
    assert sorted(path.name for path in archive_folder.iterdir()) == ["READY_20240314", "orders.csv",
                                                                      "orders.csv.md5"]
    assert "Marker READY_20240314 written to Archive:READY_20240314" in log_text(run)


class Receiver(threading.Thread):
    """A vendor's system: waits for the file to land, then writes its answer beside it."""

    def __init__(self, folder, name, answer_name, text=b""):
        super().__init__(daemon=True)
        self.folder, self.name, self.answer_name, self.text = folder, name, answer_name, text
        self.answered_after_landing = None

    def run(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (self.folder / self.name).exists():
                self.answered_after_landing = True
                (self.folder / self.answer_name).write_bytes(self.text)
                return
            time.sleep(0.05)


@pytest.fixture
def quick_polls(settings):
    settings.ETL_ACK_POLL_SECONDS = 1


def test_the_run_waits_for_the_receivers_acknowledgement(make_task, sqlite_orders, sftp_drop, ny_project, run_at,
                                                         quick_polls):
    sftp, folder = sftp_drop
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, sftp, folder.name, ack_pattern="{name}.ack", nack_pattern="{name}.nack", ack_wait_minutes=1,
                ack_failure=Destination.AckFailure.FAILURE)
    receiver = Receiver(folder, "orders.csv", "orders.csv.ack")
    receiver.start()

    run = run_at(task, MARCH_15)

    receiver.join(5)
    assert receiver.answered_after_landing
    assert run.status == "succeeded", log_text(run)
    assert "orders.csv acknowledged by Vendor SFTP (orders.csv.ack)" in log_text(run)
    [delivery] = RunFile.objects.get(run=run).deliveries
    assert delivery["answer"] == "acknowledged"


def test_a_refusal_fails_the_run_with_the_receivers_reason(make_task, sqlite_orders, sftp_drop, ny_project, run_at,
                                                           quick_polls, client_of, owner):
    sftp, folder = sftp_drop
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, sftp, folder.name, ack_pattern="{name}.ack", nack_pattern="{name}.nack", ack_wait_minutes=1,
                ack_failure=Destination.AckFailure.FAILURE)
    Receiver(folder, "orders.csv", "orders.csv.nack", b"Line 3:\n  amount is not a number\n").start()

    run = run_at(task, MARCH_15)

    assert run.status == "failed"
    assert run.error == ("The receiver did not accept the delivery: Vendor SFTP: orders.csv was refused "
                         "(orders.csv.nack: Line 3: amount is not a number)")
    assert run.attempt == 1 and not run.retries.exists()
    record = RunFile.objects.get(run=run)  # it did reach the vendor: recorded, with the answer
    assert record.deliveries[0]["answer"] == "refused"
    assert "refused" in client_of(owner).get(f"/runs/{run.pk}/").content.decode()


def test_no_answer_in_time_is_a_warning_when_the_destination_says_so(make_task, sqlite_orders, local_folder,
                                                                     ny_project, run_at):
    connection, _ = local_folder("Vendor")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, connection, ack_pattern="acks/{name}.ok", ack_wait_minutes=0)

    run = run_at(task, MARCH_15)

    assert run.status == "warning"
    assert run.error == "Vendor: no answer for orders.csv within 0 minutes (acks/orders.csv.ok did not appear)"
    assert RunFile.objects.get(run=run).deliveries[0]["answer"] == "no answer"


def test_the_success_email_can_carry_the_manifest(make_task, sqlite_orders, local_folder, ny_project, run_at,
                                                  smtp_connection, mailbox):
    connection, _ = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv")
    Notification.objects.create(task=task, event="success", smtp_connection=smtp_connection,
                                recipients="ana@example.com", attach_manifest=True)

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    [mail] = mailbox.received
    attached = {part.get_filename(): part.get_content() for part in mail.message.iter_attachments()}
    manifest = json.loads(attached[f"run-{run.pk}-manifest.json"])
    record = RunFile.objects.get(run=run)
    assert manifest["files"][0]["sha256"] == record.sha256
    assert manifest["files"][0]["deliveries"][0]["verified"] == "size and sha256"


@pytest.mark.parametrize("fields, field, message", [
    ({"marker": "named", "marker_name": ""}, "marker_name", "Name the marker file"),
    ({"ack_pattern": "answer.ack"}, "ack_pattern", "Put {name} where the delivered file's name goes"),
    ({"nack_pattern": "{name}.bad"}, "ack_pattern", "A refusal file needs an acknowledgement file"),
])
def test_proof_settings_that_cannot_work_are_refused_in_place(make_task, sqlite_orders, local_folder, fields, field,
                                                              message):
    connection, _ = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    data = {"destinations-TOTAL_FORMS": "1", "destinations-INITIAL_FORMS": "0", "destinations-0-connection":
            str(connection.pk), "destinations-0-overwrite": "on", "destinations-0-ack_wait_minutes": "30",
            "destinations-0-ack_failure": "warning", "destinations-0-position": "0", "destinations-0-folder": ""}
    data.update({f"destinations-0-{key}": value for key, value in fields.items()})
    formset = DestinationFormSet(data, instance=task, prefix="destinations")
    assert not formset.is_valid()
    assert message in " ".join(formset.forms[0].errors[field])
