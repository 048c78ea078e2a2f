"""One factory per kind of object the tests build: plain functions with keyword defaults, each returning the saved
object. Fixtures (tests/conftest.py, tests/fixtures/) call these instead of repeating the model calls, so a new
required field or a changed way of adding a member is changed here once.

Plain functions rather than factory_boy: every object here needs only a line or two of defaults, and a test reads
better with the call it makes (`factories.sqlite_source(organization, path, ...)`) than with a declarative class.
"""
import hashlib
import sqlite3
from pathlib import Path

from django.contrib.auth.models import User

from connections.models import Connection
from projects.models import Organization, Project
from runs.models import Run, RunFile
from tasks.models import Destination, Task

PASSWORD = "correct horse battery"


# --- people ---------------------------------------------------------------------------------------------------

def organization(name="Acme Analytics", **fields):
    return Organization.objects.create(name=name, **fields)


def user(username, *, email=None, password=PASSWORD, **fields):
    return User.objects.create_user(username, email or f"{username}@example.com", password, **fields)


def member(organization, username, role="viewer", *, can_write_code=False, **user_fields):
    """A new user who is a member of `organization` with `role` (viewer, editor, admin)."""
    person = user(username, **user_fields)
    organization.members.add(person, through_defaults={"role": role, "can_write_code": can_write_code})
    return person


# --- projects and tasks ---------------------------------------------------------------------------------------

def project(organization, owner, name="Vendor feeds", **fields):
    return Project.objects.create(organization=organization, name=name, owner=owner, **fields)


def task(project, name="Extract", destinations=(), **fields):
    """A task with any fields, and `destinations` as (connection, folder) pairs in that order."""
    created = Task.objects.create(project=project, name=name, **fields)
    for position, (connection_, folder) in enumerate(destinations):
        Destination.objects.create(task=created, connection=connection_, folder=folder, position=position)
    return created


# --- connections ----------------------------------------------------------------------------------------------

def connection(organization, kind, name=None, **fields):
    """A connection of any kind; servers' fixtures pass host, port, username, secrets."""
    return Connection.objects.create(organization=organization, kind=kind, name=name or f"{kind} connection",
                                     **fields)


def sqlite_database(path, schema="", rows=None):
    """A SQLite file at `path` (its folder made): `schema` run as a script, then `rows` ({table: [tuples]})
    inserted. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        if schema:
            db.executescript(schema)
        for table, values in (rows or {}).items():
            values = list(values)
            if values:
                marks = ", ".join("?" * len(values[0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        db.commit()
    finally:
        db.close()
    return path


def sqlite_source(organization, path, schema="", rows=None, *, name="Local SQLite", **fields):
    """A SQLite source connection on a database made by sqlite_database(path, schema, rows)."""
    sqlite_database(path, schema, rows)
    return connection(organization, "sqlite", name=name, path=str(path), **fields)


def local_folder(organization, folder, name="Drop folder", **fields):
    """A local-folder connection on `folder` (made if missing)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return connection(organization, "local", name=name, path=str(folder), **fields)


# --- runs -----------------------------------------------------------------------------------------------------

def run(task, **fields):
    return Run.objects.create(task=task, **fields)


def run_file(run, name="orders.csv", content=None, *, stored=None, **fields):
    """A file a run produced. With `content`, it is written to `stored` (a path) and its size and md5 recorded;
    without, only the record (size 0 unless given)."""
    if content is not None:
        Path(stored).parent.mkdir(parents=True, exist_ok=True)
        Path(stored).write_bytes(content)
        fields.setdefault("size", len(content))
        fields.setdefault("md5", hashlib.md5(content).hexdigest())
    fields.setdefault("size", 0)
    if stored is not None:
        fields.setdefault("stored_path", str(stored))
    return RunFile.objects.create(run=run, name=name, **fields)
