"""Settings hygiene: the environment is read only in etl_portal/settings.py, and importing the settings writes
nothing (the data folder's keys come from scripts/init-keys.py)."""
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
APP_FOLDERS = ["etl_portal", "projects", "connections", "tasks", "runs", "alerts", "audit"]
ENVIRONMENT_READ = re.compile(r"\bos\.environ\b|\bgetenv\b|\bos\.environb\b|from\s+os\s+import[^\n]*\benviron")

# Lines that touch the process environment without reading a setting, each with the reason it may.
ALLOWED = {
    ("manage.py", 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl_portal.settings")'):
        "Django's own bootstrap: names the settings module before there are settings",
    ("etl_portal/wsgi.py", 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl_portal.settings")'):
        "Django's own bootstrap: names the settings module before there are settings",
    ("runs/scripts.py", "environ = dict(os.environ)"):
        "the environment handed to uv (a child process) when it builds a script environment: uv needs the "
        "portal's PATH, proxy and certificate variables; the script itself gets a clean one",
}


def environment_reads():
    files = [BASE_DIR / "manage.py"] + [path for folder in APP_FOLDERS for path in (BASE_DIR / folder).rglob("*.py")]
    for path in sorted(files):
        relative = path.relative_to(BASE_DIR).as_posix()
        if relative == "etl_portal/settings.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ENVIRONMENT_READ.search(line):
                yield relative, number, line.strip()


def test_the_environment_is_read_only_in_settings_py():
    found = list(environment_reads())
    unexpected = [f"{path}:{number}: {line}" for path, number, line in found if (path, line) not in ALLOWED]
    assert not unexpected, ("Read the environment in etl_portal/settings.py (env, env_bool, env_int, ...) and "
                            "use django.conf.settings:\n" + "\n".join(unexpected))
    # Every allowance is still used, so the list cannot quietly cover code that moved elsewhere.
    assert {(path, line) for path, _, line in found} >= set(ALLOWED)


def clean_environment(data_dir, **variables):
    """The test process's environment without any ETL_/DJANGO_ variable (no key given), plus `variables`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ETL_", "DJANGO_"))}
    env.update(ETL_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="etl_portal.settings", **variables)
    return env


def python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True,
                          timeout=120)


def listing(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else None


def test_settings_without_keys_refuse_to_start_naming_the_command_and_write_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "not-there"
    for data_dir in (empty, missing):
        before = listing(data_dir)
        result = python("import etl_portal.settings", clean_environment(data_dir))
        assert result.returncode != 0
        assert (f"ImproperlyConfigured: DJANGO_SECRET_KEY is not set and {data_dir}/django-secret.key does not "
                f"exist: run `python3 scripts/init-keys.py`") in result.stderr
        assert listing(data_dir) == before
    assert not missing.exists()

    # The Django key given, the Fernet key missing: that one is named.
    result = python("import etl_portal.settings", clean_environment(empty, DJANGO_SECRET_KEY="k" * 50))
    assert f"ETL_FERNET_KEYS is not set and {empty}/fernet.key does not exist" in result.stderr


def test_starting_django_with_keys_in_the_environment_writes_nothing(tmp_path):
    data_dir = tmp_path / "fresh-data"
    data_dir.mkdir()
    env = clean_environment(data_dir, DJANGO_SECRET_KEY="k" * 50,
                            ETL_FERNET_KEYS="yyNPMhyKYfzTSUKUCeM0U3vuCV0uB3UGf6KTyxbyp0U=")
    # Every app, model, URL and view module imported, as a server's first request would.
    code = ("import django; django.setup(); from django.urls import get_resolver; "
            "print(len(get_resolver().url_patterns))")
    result = python(code, env)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0
    assert listing(data_dir) == []


def test_init_keys_makes_each_key_once_and_settings_read_them(tmp_path):
    data_dir = tmp_path / "fresh-data"
    env = clean_environment(data_dir)
    init = [sys.executable, str(BASE_DIR / "scripts" / "init-keys.py")]
    subprocess.run(init, env=env, check=True, capture_output=True)
    assert listing(data_dir) == ["django-secret.key", "fernet.key"]
    keys = {name: (data_dir / name).read_text() for name in listing(data_dir)}
    for name in keys:
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    subprocess.run(init, env=env, check=True, capture_output=True)
    assert {name: (data_dir / name).read_text() for name in keys} == keys  # never replaced

    code = ("from django.conf import settings as s; from cryptography.fernet import Fernet; "
            "Fernet(s.ETL_FERNET_KEYS[0].encode()); print(s.SECRET_KEY)")
    result = python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == keys["django-secret.key"].strip()


def test_a_number_setting_refuses_what_is_not_a_number(tmp_path):
    env = clean_environment(tmp_path, DJANGO_SECRET_KEY="k" * 50, ETL_FERNET_KEYS="x", ETL_RUN_LEASE_SECONDS="fast")
    result = python("import etl_portal.settings", env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: ETL_RUN_LEASE_SECONDS='fast' is not a whole number" in result.stderr
