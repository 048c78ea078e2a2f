"""The fast tier's test database: tables made straight from the models, then what the migrations add besides.

`make test-fast` passes pytest-django's `--no-migrations`: each xdist worker then creates its tables from the
models in about a second, where applying the migrations took about ten (Django renders the models' state again
after each of them). `complete_database` then adds what migrating adds besides: the tables of an app without a
models module (the change history's), and the rows of the data migrations (the default system jobs with their
triggers and schedules, the reaper's schedule), by running every `RunPython` of the migration plan in the order
`migrate` applies them. A test sees the tables and rows a migrated database has.

`make test` keeps applying the migrations, and `tests/test_schema_from_models.py` checks there that the two
databases agree: the migrations leave the models' tables and columns, and these functions give the same rows.
"""
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations import RunPython
from django.test import override_settings


def data_migration_steps(using=DEFAULT_DB_ALIAS):
    """(migration, function) for every RunPython forwards function, in the order `migrate` applies them from
    an empty database. Read from the project's migration modules: under --no-migrations tests/conftest.py gives
    them back before this runs."""
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    return [(migration, operation.code) for migration, _backwards in plan
            for operation in migration.operations if isinstance(operation, RunPython)]


def create_missing_tables(schema_editor):
    """Tables of models whose app has no models module: `migrate --run-syncdb` passes such apps over, and the
    change history's models (`audit`, registered there by django-simple-history) are all of that kind."""
    connection = schema_editor.connection
    existing = set(connection.introspection.table_names())
    for model in apps.get_models():
        if model._meta.managed and not model._meta.proxy and model._meta.db_table not in existing:
            schema_editor.create_model(model)
            existing.add(model._meta.db_table)


def add_data_migration_rows(schema_editor):
    """Every data migration's function, run against the models as they are now. On tables still empty, the
    functions that convert old rows find none; the ones that add rows add them. The models of today record
    their changes in the history, which a migration's frozen models never do, so history is off meanwhile."""
    with override_settings(SIMPLE_HISTORY_ENABLED=False):
        for _migration, function in data_migration_steps(schema_editor.connection.alias):
            function(apps, schema_editor)


def complete_database(using=DEFAULT_DB_ALIAS):
    """Bring a database made from the models level with a migrated one: the tables `--run-syncdb` leaves out,
    then the data migrations' rows."""
    with connections[using].schema_editor(atomic=True) as schema_editor:
        create_missing_tables(schema_editor)
        add_data_migration_rows(schema_editor)
