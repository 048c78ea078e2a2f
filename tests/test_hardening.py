"""Hardening: login limits, the demo login, settings that refuse bad values, HTTPS headers, the
Content-Security-Policy, and numeric fields bounded to what the code can hold."""
import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest
from django.utils import timezone

from connections.models import Connection
from projects import scheduling, triggers
from projects.models import Project, Trigger
from runs.delivery import purge_expired_files
from runs.models import Run, RunFile
from tasks.models import Dependency, Task
from tests.conftest import PASSWORD
from tests import factories

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parent.parent


def log_in(client, username, password, address="10.1.1.1", url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password, "next": "/tasks/"}, REMOTE_ADDR=address)


def logged_in(response):
    return response.status_code == 302 and "_auth_user_id" in response.client.session


# --- login limits -------------------------------------------------------------------------------------------

def test_six_wrong_passwords_lock_out_that_user_from_that_address(client, owner, member, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        failed = log_in(client, owner.username, "wrong password")
        assert failed.status_code == 200 and "did not match" in failed.content.decode()
    for _ in range(2):  # the fifth failure locks, and so does every attempt after it
        locked = log_in(client, owner.username, "wrong password")
        assert locked.status_code == 429
        page = locked.content.decode()
        assert "Too many failed logins" in page and "olivia" in page and "15 minutes" in page
        assert 'href="/static/css/portal.css"' in page  # the site's own look, not a bare error

    right = log_in(client, owner.username, PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session

    # Per user *and* address: another user from that address, and the same user from elsewhere, still log in.
    assert logged_in(log_in(client, member.username, PASSWORD))
    client.logout()
    assert logged_in(log_in(client, owner.username, PASSWORD, address="10.2.2.2"))


def test_the_lockout_ends_after_the_cool_off(client, owner):
    for _ in range(6):
        log_in(client, owner.username, "wrong password")
    assert log_in(client, owner.username, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - datetime.timedelta(minutes=16))
    assert logged_in(log_in(client, owner.username, PASSWORD))


def test_the_admin_login_is_limited_too(client, staff):
    for _ in range(4):
        assert log_in(client, staff.username, "wrong", url="/admin/login/").status_code == 200
    assert log_in(client, staff.username, "wrong", url="/admin/login/").status_code == 429
    assert log_in(client, staff.username, PASSWORD, url="/admin/login/").status_code == 429


def test_the_test_clients_login_still_works(client, owner):
    assert client.login(username=owner.username, password=PASSWORD)
    assert not client.login(username=owner.username, password="wrong")
    assert client.login(request=HttpRequest(), username=owner.username, password=PASSWORD)


# --- the demo login -----------------------------------------------------------------------------------------

def test_seed_demo_prints_a_random_password_once_and_never_resets_it(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    password = re.search(r"log in as 'admin' with password '([^']+)'", first).group(1)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and password != "admin" and len(password) >= 16
    assert admin.check_password(password) and not admin.check_password("admin")

    admin.set_password("chosen by the operator")
    admin.save()
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "user 'admin' already exists; its password is unchanged" in second and "password '" not in second
    admin.refresh_from_db()
    assert admin.check_password("chosen by the operator")


# --- settings from the environment --------------------------------------------------------------------------

def settings_read(tmp_path, **variables):
    """A new process reads the settings from these variables and prints the HTTPS ones. Only the settings
    module is read, as the first thing `django.setup()` does (test_settings.py starts the whole of Django and
    checks that writes nothing): a second rather than the two of a whole start."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ETL_", "DJANGO_"))}
    env.update({"ETL_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "etl_portal.settings"},
               **variables)
    # The data folder's keys, as `make install` makes them: settings only read them.
    subprocess.run([sys.executable, str(BASE_DIR / "scripts" / "init-keys.py")], env=env, check=True,
                   capture_output=True)
    code = ("from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
            "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True,
                          timeout=120)


def test_a_yes_no_variable_refuses_a_word_it_does_not_know(tmp_path):
    typo = settings_read(tmp_path, ETL_HTTPS="ture")
    assert typo.returncode != 0
    assert "ImproperlyConfigured: ETL_HTTPS='ture' is not a yes/no value" in typo.stderr
    number = settings_read(tmp_path, ETL_LOGIN_ATTEMPTS="five")
    assert number.returncode != 0 and "ETL_LOGIN_ATTEMPTS='five' is not a whole number" in number.stderr


def test_https_settings_follow_etl_https(tmp_path):
    plain = settings_read(tmp_path, ETL_HTTPS="no")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split() == ["False", "False", "0", "False", "False", "None"]
    https = settings_read(tmp_path, ETL_HTTPS="1", ETL_BEHIND_PROXY="yes")
    assert https.returncode == 0, https.stderr
    assert https.stdout.strip() == "True True 31536000 False False ('HTTP_X_FORWARDED_PROTO', 'https')"
    # Nothing written at import (no static folder): only the keys scripts/init-keys.py made.
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["django-secret.key", "fernet.key"]


def test_over_https_cookies_are_secure_and_hsts_is_sent(client, owner, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    page = client.get("/accounts/login/", secure=True)
    assert page["Strict-Transport-Security"] == "max-age=31536000"
    assert page.cookies["csrftoken"]["secure"]
    response = client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD}, secure=True)
    assert response.status_code == 302 and response.cookies["sessionid"]["secure"]


def test_behind_a_proxy_the_proxys_own_forwarded_entry_is_the_address(client, owner, member, settings):
    settings.ETL_BEHIND_PROXY = True
    for _ in range(6):
        client.post("/accounts/login/", {"username": owner.username, "password": "wrong"}, REMOTE_ADDR="127.0.0.1",
                    HTTP_X_FORWARDED_FOR="1.2.3.4, 10.9.9.9")
    assert AccessAttempt.objects.get().ip_address == "10.9.9.9"
    # A forged first entry does not escape the lockout; another visitor behind the same proxy is not locked.
    forged = client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD},
                         REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="5.6.7.8, 10.9.9.9")
    assert forged.status_code == 429
    other = client.post("/accounts/login/", {"username": owner.username, "password": PASSWORD},
                        REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.8.8.8")
    assert other.status_code == 302


# --- Content-Security-Policy --------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"""\son[a-z]+\s*=|javascript:|\sstyle\s*=""", re.I)


def test_every_page_sends_a_policy_without_inline_scripts_and_has_none(client, org_admin, staff, project, tmp_path):
    source = factories.connection(project.organization, "sqlite", "Shop", path=str(tmp_path / "shop.sqlite3"))
    task = Task.objects.create(project=project, name="Orders", source_connection=source, query="SELECT 1")
    downstream = Task.objects.create(project=project, name="Downstream")
    Dependency.objects.create(upstream=task, downstream=downstream)  # the project page draws its graph
    run = Run.objects.create(task=task, status=Run.Status.SUCCEEDED)
    stored = tmp_path / "data" / "runs" / "orders.csv"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text("id\n1\n")
    RunFile.objects.create(run=run, name="orders.csv", stored_path=str(stored), size=5)
    client.force_login(org_admin)  # an admin sees every page, the connection form included
    urls = ["/tasks/", "/tasks/mine/", "/tasks/new/", f"/tasks/{task.pk}/", f"/tasks/{task.pk}/edit/",
            f"/runs/{run.pk}/", "/projects/", f"/projects/{project.pk}/", "/connections/", "/connections/new/",
            f"/connections/{source.pk}/", "/files/", f"/alerts/tasks/{task.pk}/webhooks/new/",
            f"/alerts/projects/{project.pk}/webhooks/new/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                          "frame-ancestors 'none'", "form-action 'self'", "object-src 'none'", "base-uri 'self'"):
            assert directive in policy, (url, directive)
        assert "unsafe" not in policy
        page = response.content.decode()
        assert not INLINE_SCRIPT.findall(page), url
        assert not INLINE_HANDLER.findall(page), (url, INLINE_HANDLER.findall(page))
    assert "data-confirm=" in client.get(f"/tasks/{task.pk}/").content.decode()  # the resend button's question
    assert 'class="dependency-graph"' in client.get(f"/projects/{project.pk}/").content.decode()
    client.force_login(staff)
    assert "script-src 'self'" in client.get(f"/admin/tasks/task/{task.pk}/change/")["Content-Security-Policy"]
    assert "script-src 'self'" in client.get("/accounts/login/")["Content-Security-Policy"]


# --- numeric bounds -----------------------------------------------------------------------------------------

def task_form_data(project, source, **fields):
    data = {
        "project": project.pk, "name": "Daily orders", "run_rank": 1, "enabled": "on", "source_kind": "query",
        "text_location": "inline", "file_format": "csv", "csv_delimiter": ",", "csv_quoting": "minimal",
        "line_terminator": "lf", "encoding": "utf-8", "retention_days": 30, "on_no_files": "fail",
        "file_handling": "as_is", "priority": 50, "max_instances": 1, "dependency_mode": "all", "retries": 0,
        "retry_delay_seconds": 60, "retry_max_delay_seconds": 600, "processing_location": "",
        "source_connection": source.pk, "query": "SELECT 1", "file_name": "x.csv",
    }
    for prefix in ("destinations", "parameters", "conditions", "notifications", "dependencies"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(fields)
    return data


@pytest.mark.parametrize("field, value, message", [
    ("retention_days", 99999999999999, "Ensure this value is less than or equal to 36500."),
    ("timeout_seconds", 10 ** 9, "Ensure this value is less than or equal to 21600."),
    ("retry_delay_seconds", 10 ** 12, "Ensure this value is less than or equal to 604800."),
    ("priority", 0, "Ensure this value is greater than or equal to 1."),
])
def test_the_task_form_refuses_numbers_the_code_cannot_hold(client, owner, project, tmp_path, field, value,
                                                            message):
    source = factories.connection(project.organization, "sqlite", "Shop", path=str(tmp_path / "shop.sqlite3"))
    client.force_login(owner)
    response = client.post("/tasks/new/", task_form_data(project, source, **{field: value}))
    assert response.status_code == 200 and not Task.objects.exists()
    page = response.content.decode()
    assert message in page and f'id="error_1_id_{field}"' in page


def test_the_trigger_form_refuses_an_interval_over_a_hundred_years(client, owner, organization):
    client.force_login(owner)
    data = {"organization": organization.pk, "name": "Nightly", "owner": owner.pk, "enabled": "on",
            "mode": "series", "max_parallel": 4, "time_zone": "UTC", "missed_runs": "run_once",
            "triggers-TOTAL_FORMS": 1, "triggers-INITIAL_FORMS": 0, "parameters-TOTAL_FORMS": 0,
            "parameters-INITIAL_FORMS": 0, "triggers-0-kind": "interval", "triggers-0-enabled": "on",
            "triggers-0-every": 6000, "triggers-0-unit": "weeks", "triggers-0-jitter_seconds": 0}
    page = client.post("/projects/new/", data).content.decode()
    assert not Project.objects.exists()
    assert "At most 100 years: every 5,214 weeks or less." in page
    huge = client.post("/projects/new/", {**data, "triggers-0-every": 99999999999999}).content.decode()
    assert not Project.objects.exists() and 'id="error_1_id_triggers-0-every"' in huge
    jitter = client.post("/projects/new/", {**data, "triggers-0-every": 1, "triggers-0-jitter_seconds": 10 ** 9})
    assert not Project.objects.exists() and "less than or equal to 86400" in jitter.content.decode()


def test_the_connection_form_refuses_a_port_out_of_range(client, org_admin, organization):
    client.force_login(org_admin)
    data = {"organization": organization.pk, "name": "Vendor drop", "kind": "sftp", "host": "127.0.0.1",
            "port": "70000", "username": "vendor", "password": "x"}
    page = client.post("/connections/new/", data).content.decode()
    assert not Connection.objects.exists()
    assert "Ensure this value is less than or equal to 65535." in page


def test_purge_skips_a_task_with_an_impossible_retention_and_purges_the_others(project, tmp_path, caplog, settings):
    data_dir = Path(settings.ETL_DATA_DIR)
    files = {}
    for name in ("Broken", "Fine"):
        task = Task.objects.create(project=project, name=name, retention_days=30)
        run = Run.objects.create(task=task, status=Run.Status.SUCCEEDED)
        stored = data_dir / "runs" / str(task.pk) / str(run.pk) / f"{name}.csv"
        stored.parent.mkdir(parents=True)
        stored.write_text("x\n")
        files[name] = RunFile.objects.create(run=run, name=stored.name, stored_path=str(stored), size=2)
    RunFile.objects.update(created_at=timezone.now() - datetime.timedelta(days=40))
    # A row saved before the validators existed.
    Task.objects.filter(name="Broken").update(retention_days=99999999999999)

    assert purge_expired_files() == 1

    files["Fine"].refresh_from_db()
    files["Broken"].refresh_from_db()
    assert files["Fine"].purged_at is not None and not Path(files["Fine"].stored_path).exists()
    assert files["Broken"].purged_at is None and Path(files["Broken"].stored_path).exists()
    broken = Task.objects.get(name="Broken")
    assert f"Task {broken.pk}: retention of 99999999999999 days is beyond what dates can hold" in caplog.text


def test_a_huge_interval_saved_before_the_validators_breaks_no_page_or_command(client, owner, project, caplog,
                                                                               capsys):
    sane = Trigger.objects.create(project=project, kind="interval", every=1, unit="hours")
    broken = Trigger.objects.create(project=project, kind="interval", every=2, unit="weeks")
    Trigger.objects.filter(pk=broken.pk).update(every=99999999999999, jitter_seconds=10 ** 12)
    broken.refresh_from_db()

    assert triggers.next_fire_times(broken, timezone.now(), 3) == []
    assert "has no fire time that Python's dates can hold" in caplog.text
    assert scheduling.arm(broken) is None
    assert len(triggers.next_fire_times(sane, timezone.now(), 3)) == 3
    assert scheduling.reschedule_all() >= 1

    call_command("list_schedules")
    out = capsys.readouterr().out
    assert f"trigger {broken.pk} - project {project.name} - Every 99999999999999 weeks" in out
    assert "no run time left" in out
    client.force_login(owner)
    assert client.get(f"/projects/{project.pk}/").status_code == 200
