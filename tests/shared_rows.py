"""Rows built once per test module and seen unchanged by every test in it.

The authorization tables run hundreds of cases against the same small world; building it for each case was most of
the fast tier's time. `built_once` makes the rows inside a transaction that stays open for the module (on the
worker that runs it) and is rolled back when the module ends; each test runs in a savepoint inside it
(pytest-django's `db`, Django's TestCase), rolled back after the test, so whatever a case changes, the next sees
the rows as built. Each test gets a deep copy of the built objects, so nothing it does to them in memory
(refresh_from_db, cached rights) reaches the next one either.
"""
import copy
from contextlib import contextmanager

from django.db import transaction


@contextmanager
def built_once(django_db_blocker, build):
    """Run `build()` in a transaction held open for the block, rolled back at its end; yield what it returned."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield build()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def fresh(objects):
    """A test's own copy of the built objects (model instances included, their shared references kept)."""
    return copy.deepcopy(objects)
