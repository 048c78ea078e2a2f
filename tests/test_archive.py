"""The archive (runs/archive.py): with a shared ETL_ARCHIVE_DIR, or on a file-store connection (ETL_ARCHIVE_CONNECTION,
the suite's SFTP server), a file a worker made in its own data folder is downloaded, resent and purged by a web
node whose data folder is another."""
import datetime
import shutil
import uuid

import pytest

from runs import archive
from runs.delivery import purge_expired_files
from runs.models import RunFile
from tasks.models import Destination
from tests import factories
from tests.fixtures.delivery import ORDERS_QUERY, log_text
from tests.servers.common import free_port

pytestmark = pytest.mark.django_db


def test_a_file_made_on_one_host_is_downloaded_and_resent_from_another(
        make_task, sqlite_orders, local_folder, owner, client_of, ny_project, run_at, settings, tmp_path):
    worker_dir, web_dir, shared = tmp_path / "worker-host", tmp_path / "web-host", tmp_path / "shared-archive"
    for folder in (worker_dir, web_dir, shared):
        folder.mkdir()
    settings.ETL_ARCHIVE_DIR = str(shared)
    drop, drop_folder = local_folder("Vendor drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    Destination.objects.create(task=task, connection=drop)

    settings.ETL_DATA_DIR = worker_dir  # the worker host runs the task
    run = run_at(task)
    assert run.status == "succeeded", log_text(run)
    record = RunFile.objects.get(run=run)
    assert record.stored_path == f"runs/{task.pk}/{run.pk}/orders.csv", "a key, not the worker's own path"
    delivered = (drop_folder / "orders.csv").read_bytes()

    settings.ETL_DATA_DIR = web_dir  # another node: the worker's folder is not here
    shutil.rmtree(worker_dir)
    response = client_of(owner).get(f"/runs/files/{record.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == delivered
    (drop_folder / "orders.csv").unlink()
    page = client_of(owner).post(f"/runs/files/{record.pk}/resend/", follow=True)
    assert "orders.csv resent to Vendor drop" in page.content.decode()
    assert (drop_folder / "orders.csv").read_bytes() == delivered

    task.retention_days = 1
    task.save()
    assert purge_expired_files(now=record.created_at + datetime.timedelta(days=2)) == 1
    assert not (shared / record.stored_path).exists() and not (shared / "runs" / str(task.pk)).exists()
    assert client_of(owner).get(f"/runs/files/{record.pk}/download/").status_code == 404


def test_a_key_never_reaches_outside_the_archive(settings, tmp_path):
    settings.ETL_ARCHIVE_DIR = str(tmp_path / "shared")
    (tmp_path / "secret.txt").write_text("not yours")
    assert archive.path_of("../secret.txt") is None and not archive.exists("../secret.txt")
    with pytest.raises(FileNotFoundError):
        archive.open_file("../secret.txt")
    assert archive.delete("../secret.txt") is False and (tmp_path / "secret.txt").exists()


@pytest.fixture
def sftp_archive(organization, sshd, settings):
    """ETL_ARCHIVE_CONNECTION: a folder on the suite's SFTP server, through a connection of the portal's own."""
    folder = sshd.make_folder(f"archive-{uuid.uuid4().hex[:6]}")
    vault = factories.connection(organization, "sftp", "Archive SFTP", host=sshd.host, port=sshd.port,
                                 username=sshd.username, secrets={"password": sshd.password}, path=str(folder))
    settings.ETL_ARCHIVE_CONNECTION = vault.name
    return vault, folder


def test_on_an_sftp_connection_a_file_is_kept_read_resent_and_purged_by_another_node(
        make_task, sqlite_orders, local_folder, owner, client_of, run_at, settings, tmp_path, sftp_archive):
    vault, vault_folder = sftp_archive
    worker_dir, web_dir = tmp_path / "worker-host", tmp_path / "web-host"
    for folder in (worker_dir, web_dir):
        folder.mkdir()
    drop, drop_folder = local_folder("Vendor drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv", retention_days=1)
    Destination.objects.create(task=task, connection=drop)

    settings.ETL_DATA_DIR = worker_dir
    run = run_at(task)
    assert run.status == "succeeded", log_text(run)
    record = RunFile.objects.get(run=run)
    on_server = vault_folder / f"{run.pk}-orders.csv"
    assert record.stored_path == f"connection:{vault.pk}:{on_server}"
    delivered = (drop_folder / "orders.csv").read_bytes()
    assert on_server.read_bytes() == delivered and not list(vault_folder.glob(".*.part"))

    settings.ETL_DATA_DIR = web_dir  # another node, with no copy of the worker's folder
    shutil.rmtree(worker_dir)
    response = client_of(owner).get(f"/runs/files/{record.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == delivered
    (drop_folder / "orders.csv").unlink()
    page = client_of(owner).post(f"/runs/files/{record.pk}/resend/", follow=True)
    assert "orders.csv resent to Vendor drop" in page.content.decode()
    assert (drop_folder / "orders.csv").read_bytes() == delivered

    assert purge_expired_files(now=record.created_at + datetime.timedelta(days=2)) == 1
    assert not on_server.exists()
    assert client_of(owner).get(f"/runs/files/{record.pk}/download/").status_code == 404


def test_a_file_the_archive_server_lost_or_cannot_give_is_refused_with_a_reason(
        make_task, sqlite_orders, local_folder, owner, client_of, run_at, sftp_archive):
    vault, vault_folder = sftp_archive
    drop, drop_folder = local_folder("Vendor drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    Destination.objects.create(task=task, connection=drop)
    run = run_at(task)
    (drop_folder / "orders.csv").unlink()
    record = RunFile.objects.get(run=run)
    on_server = vault_folder / f"{run.pk}-orders.csv"
    on_server.unlink()  # removed on the server behind the portal's back
    response = client_of(owner).get(f"/runs/files/{record.pk}/download/")
    assert response.status_code == 503 and "could not be read from the archive" in response.content.decode()
    page = client_of(owner).post(f"/runs/files/{record.pk}/resend/", follow=True)
    assert [str(message) for message in page.context["messages"]] == [f"{on_server} does not exist"]
    assert not (drop_folder / "orders.csv").exists()


def test_an_unreachable_archive_server_keeps_the_file_on_the_worker_and_says_so(
        make_task, sqlite_orders, local_folder, owner, client_of, run_at, settings, organization):
    closed = factories.connection(organization, "sftp", "Archive down", host="127.0.0.1", port=free_port(),
                                  username="nobody", secrets={"password": "x"})
    settings.ETL_ARCHIVE_CONNECTION = str(closed.pk)
    drop, drop_folder = local_folder("Vendor drop")
    task = make_task(sqlite_orders, ORDERS_QUERY, file_name="orders.csv")
    Destination.objects.create(task=task, connection=drop)
    run = run_at(task)
    assert run.status == "succeeded", log_text(run)  # delivered once: not failed (a retry would deliver again)
    assert "orders.csv could not be archived" in log_text(run) and "kept on this worker host only" in log_text(run)
    record = RunFile.objects.get(run=run)
    assert record.stored_path == str((settings.ETL_DATA_DIR / "runs" / str(task.pk) / str(run.pk) /
                                      "orders.csv").resolve())
    response = client_of(owner).get(f"/runs/files/{record.pk}/download/")
    assert b"".join(response.streaming_content) == (drop_folder / "orders.csv").read_bytes()


def test_a_purge_the_archive_server_cannot_do_now_is_tried_again_later(make_task, sqlite_orders, organization):
    closed = factories.connection(organization, "sftp", "Archive down", host="127.0.0.1", port=free_port(),
                                  username="nobody", secrets={"password": "x"})
    task = make_task(sqlite_orders, ORDERS_QUERY, retention_days=1)
    record = factories.run_file(factories.run(task), stored_path=f"connection:{closed.pk}:/archive/1-orders.csv")
    gone = factories.run_file(factories.run(task), stored_path="connection:999999:/archive/2-orders.csv")
    later = record.created_at + datetime.timedelta(days=2)
    assert purge_expired_files(now=later) == 1  # the one whose connection was deleted: nothing left to reach
    record.refresh_from_db()
    gone.refresh_from_db()
    assert record.purged_at is None and gone.purged_at == later
