"""Delivery: several destinations (local and SFTP), overwrite off, empty files, resend, retention."""
import datetime
import os
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from connections.models import Connection
from runs.delivery import purge_expired_files
from runs.models import RunFile
from tasks.models import Destination
from tests.fixtures.delivery import EMPTY_QUERY, ORDERS_QUERY, log_text

pytestmark = pytest.mark.django_db

MARCH_15 = datetime.datetime(2024, 3, 15, 6, 0)


def destination(task, connection, folder="", **fields):
    return Destination.objects.create(task=task, connection=connection, folder=folder, **fields)


def test_one_file_reaches_every_destination(make_task, sqlite_orders, local_folder, sftp_drop, ftp_connection, ftpd,
                                           smb_connection, smbd, ny_project, run_at):
    sftp, sftp_folder = sftp_drop
    archive, archive_folder = local_folder("Archive")
    ftp_folder = ftpd.make_folder(f"in-{uuid.uuid4().hex[:6]}")
    smb_folder = smbd.make_folder(f"in-{uuid.uuid4().hex[:6]}")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders_{yesterday:%Y%m%d}.csv")
    destination(task, sftp, sftp_folder.name)
    destination(task, ftp_connection, ftp_folder.name)
    destination(task, smb_connection, smb_folder.name)
    destination(task, archive, "%Y/%m")

    run = run_at(task, MARCH_15)

    assert run.status == "succeeded", log_text(run)
    arrived = [sftp_folder / "orders_20240314.csv", ftp_folder / "orders_20240314.csv",
               smb_folder / "orders_20240314.csv", archive_folder / "2024" / "03" / "orders_20240314.csv"]
    record = RunFile.objects.get(run=run)
    assert {path.read_bytes() for path in arrived} == {Path(record.stored_path).read_bytes()}
    assert Path(record.stored_path).read_bytes().startswith(b"id,day,customer")
    assert [d["connection"] for d in record.deliveries] == ["Vendor SFTP", "Vendor FTP", "Finance share", "Archive"]
    assert record.deliveries[3]["path"] == "2024/03/orders_20240314.csv"
    assert not [path for path in arrived[0].parent.iterdir() if path.name.endswith(".part")]


def test_overwrite_off_leaves_the_waiting_file_alone(make_task, sqlite_orders, local_folder, ny_project, run_at):
    guarded, guarded_folder = local_folder("Vendor inbox")
    other, other_folder = local_folder("Archive")
    (guarded_folder / "orders.csv").write_bytes(b"yesterday's file, not picked up yet\n")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, guarded, overwrite=False)
    destination(task, other)

    run = run_at(task, MARCH_15)

    assert run.status == "warning"
    assert "orders.csv was not sent to Vendor inbox: orders.csv already exists and overwriting is off" in run.error
    assert (guarded_folder / "orders.csv").read_bytes() == b"yesterday's file, not picked up yet\n"
    assert (other_folder / "orders.csv").read_bytes().startswith(b"id,day")


def test_an_empty_file_skips_only_the_destinations_that_refuse_it(make_task, sqlite_orders, local_folder,
                                                                 ny_project, run_at):
    picky, picky_folder = local_folder("Vendor")
    archive, archive_folder = local_folder("Archive")
    task = make_task(sqlite_orders, EMPTY_QUERY, file_name="orders.csv", write_md5_file=True)
    destination(task, picky, skip_empty=True)
    destination(task, archive)

    run = run_at(task, MARCH_15)

    assert run.status == "warning"
    assert "orders.csv is empty: not sent to Vendor" in log_text(run)
    assert list(picky_folder.iterdir()) == []  # neither the file nor its .md5
    assert (archive_folder / "orders.csv").read_bytes() == b"id,day,customer,amount,note\n"
    assert (archive_folder / "orders.csv.md5").exists()


def test_a_failing_destination_does_not_hold_back_the_others(make_task, sqlite_orders, local_folder, organization,
                                                            closed_port, ny_project, run_at):
    down = Connection.objects.create(organization=organization, name="Down SFTP", kind="sftp", host="127.0.0.1",
                                     port=closed_port, username="nobody", secrets={"password": "x-Pa55word"},
                                     options={"timeout": 3})
    archive, archive_folder = local_folder("Archive")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    destination(task, down)
    destination(task, archive)

    run = run_at(task, MARCH_15)

    assert run.status == "failed"
    assert run.error.startswith("Delivery failed: Down SFTP:")
    assert "x-Pa55word" not in log_text(run)
    assert (archive_folder / "orders.csv").exists()


def test_resend_goes_to_the_current_destinations_and_is_logged(make_task, sqlite_orders, local_folder, sftp_drop,
                                                              owner, member, client_of, ny_project, run_at):
    old, old_folder = local_folder("Old drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders_{yesterday:%Y%m%d}.csv")
    old_destination = destination(task, old)
    run = run_at(task, MARCH_15)
    assert run.status == "succeeded", log_text(run)
    record = RunFile.objects.get(run=run)

    # The vendor moved to SFTP since; a resend goes there, into the folder worked out for the run's day.
    old_destination.delete()
    sftp, sftp_folder = sftp_drop
    destination(task, sftp, sftp_folder.name + "/%Y%m%d")
    (sftp_folder / "20240315").mkdir()
    os.chown(sftp_folder / "20240315", *(lambda st: (st.st_uid, st.st_gid))(os.stat(sftp_folder)))

    assert client_of(member).post(f"/runs/files/{record.pk}/resend/").status_code == 403  # may look, not act
    page = client_of(owner).post(f"/runs/files/{record.pk}/resend/", follow=True)

    assert page.status_code == 200
    resent = sftp_folder / "20240315" / "orders_20240314.csv"
    assert resent.read_bytes() == Path(record.stored_path).read_bytes()
    assert "orders_20240314.csv resent to Vendor SFTP" in page.content.decode()
    line = run.log_lines.filter(message__startswith="Resent").get()
    assert line.message == (f"Resent orders_20240314.csv to Vendor SFTP:{sftp_folder}/20240315/orders_20240314.csv"
                            " (size checked) (requested by olivia)")
    record.refresh_from_db()
    assert [d["connection"] for d in record.deliveries] == ["Old drop", "Vendor SFTP"]
    assert record.deliveries[1]["resent_by"] == "olivia"


def test_retention_deletes_old_files_and_keeps_their_records(make_task, sqlite_orders, ny_project, run_at):
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv", retention_days=30)
    keep_forever = make_task(sqlite_orders, ORDERS_QUERY, name="Audit copy", file_name="audit.csv", retention_days=0)
    old, recent, forever = run_at(task, MARCH_15), run_at(task, MARCH_15), run_at(keep_forever, MARCH_15)
    now = timezone.now()
    RunFile.objects.filter(run__in=[old, forever]).update(created_at=now - datetime.timedelta(days=31))
    RunFile.objects.filter(run=recent).update(created_at=now - datetime.timedelta(days=29))
    old_file = RunFile.objects.get(run=old)

    assert purge_expired_files(now) == 1

    old_file.refresh_from_db()
    assert old_file.purged_at == now and not old_file.is_available
    assert not Path(old_file.stored_path).exists() and not Path(old_file.stored_path).parent.exists()
    assert RunFile.objects.get(run=recent).is_available and RunFile.objects.get(run=forever).is_available
    assert purge_expired_files(now) == 0


def test_a_purged_file_cannot_be_resent_and_the_button_is_gone(make_task, sqlite_orders, local_folder, owner,
                                                               client_of, rf, ny_project, run_at):
    from django.template.loader import render_to_string

    connection, _ = local_folder()
    task = make_task(sqlite_orders, ORDERS_QUERY, [(connection, "")], file_name="orders.csv", retention_days=1)
    record = RunFile.objects.get(run=run_at(task, MARCH_15))
    request = rf.get(f"/tasks/{task.pk}/")
    request.user = owner
    assert f'action="/runs/files/{record.pk}/resend/"' in render_to_string("runs/_resend_button.html", {"f": record},
                                                                          request=request)

    purge_expired_files(timezone.now() + datetime.timedelta(days=2))
    record.refresh_from_db()

    assert render_to_string("runs/_resend_button.html", {"run_file": record}, request=request).strip() == ""
    answer = client_of(owner).post(f"/runs/files/{record.pk}/resend/?format=json")
    assert (answer.status_code, answer.json()["error"]) == (
        400, "orders.csv is no longer kept (its retention period passed): it cannot be resent")
