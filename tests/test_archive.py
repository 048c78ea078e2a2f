"""The archive (runs/archive.py): with a shared ETL_ARCHIVE_DIR, a file a worker made in its own data folder is
downloaded, resent and purged by a web node whose data folder is another."""
import datetime
import shutil

import pytest

from runs import archive
from runs.delivery import purge_expired_files
from runs.models import RunFile
from tasks.models import Destination
from tests.fixtures.delivery import ORDERS_QUERY, log_text

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
