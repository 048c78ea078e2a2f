"""The fast tier's database (tables made from the models, tests/schema_from_models.py) is the migrated one.

`make test` migrates its database, so here these tests compare the migrations' result with what the fast tier
builds: the same tables, columns and constraints, and the same rows from the data migrations.
"""
from types import SimpleNamespace

import pytest
from django.db import connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.test import override_settings
from django_q.models import Schedule

from projects.models import SystemJob, Trigger
from tests.schema_from_models import add_data_migration_rows, create_missing_tables, data_migration_steps

# Under --no-migrations (make test-fast) there is no migrated database to compare with: tests/conftest.py
# leaves these out there.
pytestmark = [pytest.mark.django_db, pytest.mark.migrated]

# Django's own bookkeeping of applied migrations and of AUTOINCREMENT counters.
BOOKKEEPING = {"django_migrations", "sqlite_sequence"}


def shape_of(database):
    """table -> (columns as (name, type, not null, primary key), constraints as (columns, unique, primary key,
    foreign key, index)); names of constraints left out, as migrations and models name some differently."""
    shape = {}
    with database.cursor() as cursor:
        for table in database.introspection.table_names(cursor):
            if table in BOOKKEEPING:
                continue
            cursor.execute(f"PRAGMA table_info({database.ops.quote_name(table)})")
            columns = {(name, kind.lower(), bool(not_null), bool(key))
                       for _cid, name, kind, not_null, _default, key in cursor.fetchall()}
            constraints = {(tuple(spec["columns"]), spec["unique"], spec["primary_key"], spec["foreign_key"],
                            spec["index"])
                           for spec in database.introspection.get_constraints(cursor, table).values()}
            shape[table] = (columns, constraints)
    return shape


def test_the_tables_made_from_the_models_are_the_migrated_tables():
    assert connection.vendor == "sqlite", "the test database is SQLite; DATABASE_URL is for the portal itself"
    made = DatabaseWrapper({**connection.settings_dict, "NAME": ":memory:"}, alias="from_models")
    connections["from_models"] = made  # the schema editor looks its connection up by alias
    try:
        with made.schema_editor() as editor:  # on an empty database: every model's table, as the fast tier's
            create_missing_tables(editor)    # --run-syncdb and this together make them
        made_shape, migrated_shape = shape_of(made), shape_of(connection)
    finally:
        made.close()
        del connections["from_models"]
    assert made_shape.keys() == migrated_shape.keys()
    differing = {table: (made_shape[table], migrated_shape[table]) for table in made_shape
                 if made_shape[table] != migrated_shape[table]}
    assert not differing


def system_rows():
    """The data migrations' rows as a user sees them: each system job with its trigger and schedule."""
    jobs = {(job.name, job.function, repr(job.kwargs), job.active, job.time_zone,
             tuple((trigger.kind, trigger.every, trigger.unit, trigger.day_of_week, trigger.hour, trigger.minute,
                    Schedule.objects.filter(name=f"etl:trigger:{trigger.pk}", args=str(trigger.pk),
                                            func="projects.scheduling.fire_trigger").count())
                   for trigger in Trigger.objects.filter(system_job=job)))
            for job in SystemJob.objects.all()}
    others = {(schedule.name, schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats)
              for schedule in Schedule.objects.exclude(name__startswith="etl:trigger:")}
    return jobs, others


def row_counts():
    with connection.cursor() as cursor:
        counts = {}
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_the_data_migrations_functions_add_the_rows_migrating_added():
    migrated_rows, migrated_counts = system_rows(), row_counts()
    assert len(migrated_rows[0]) >= 5 and migrated_rows[1], "the default system jobs and the reaper's schedule"
    # Empty what the data migrations filled, then run their functions as the fast tier does.
    with override_settings(SIMPLE_HISTORY_ENABLED=False):  # as a fresh database would have none
        Schedule.objects.all().delete()
        Trigger.objects.all().delete()
        SystemJob.objects.all().delete()
    # Inside the test's transaction SQLite cannot open a schema editor (its foreign key checks stay on); the
    # functions only need its connection.
    add_data_migration_rows(SimpleNamespace(connection=connection))
    assert system_rows() == migrated_rows
    counts = row_counts()
    # Nothing else added (change history, say), nothing missing.
    assert {table: (counts[table], migrated_counts[table]) for table in counts
            if counts[table] != migrated_counts[table]} == {}


def test_every_data_migration_is_run_in_the_order_migrate_applies_it():
    steps = [f"{migration.app_label}.{migration.name}" for migration, _function in data_migration_steps()]
    assert (steps.index("projects.0003_default_system_jobs")
            < steps.index("projects.0004_prune_script_environments_job"))
    assert {"runs.0003_reaper_schedule", "projects.0008_remind_expiring_credentials_job",
            "runs.0005_mask_recorded_file_names"} <= set(steps)
