"""Rows built once per test module and seen unchanged by every test in it.

The authorization tables run hundreds of cases against the same small world; building it for each case was most of
the fast tier's time. `built_once` makes the rows inside a transaction that stays open for the module (on the
worker that runs it) and is rolled back when the module ends; each test runs in a savepoint inside it
(pytest-django's `db`, Django's TestCase), rolled back after the test, so whatever a case changes, the next sees
the rows as built. Each test gets its own copy of the built objects (`fresh`), so nothing it does to them in
memory (refresh_from_db, cached rights) reaches the next one either. The world's users get a session each, made
with the rows (`sessions_of`), so a case logs in by presenting it (`log_in`) instead of logging in again.
"""
import copy
import datetime
import decimal
import uuid
from contextlib import contextmanager
from pathlib import PurePath

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.test import Client


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


# Values a test cannot change in place: shared between the copies, as copy.deepcopy would share them.
UNCHANGEABLE = (str, bytes, int, float, bool, type(None), datetime.date, datetime.time, datetime.timedelta,
                datetime.tzinfo, decimal.Decimal, uuid.UUID, PurePath)


def fresh(objects):
    """A test's own copy of the built objects, as copy.deepcopy would make it (shared references stay shared)
    in a fraction of its time: model instances are copied field by field, values that cannot change in place
    are shared, and only what else remains goes through deepcopy."""
    return _copy(objects, {})


def _copy(value, memo):
    if isinstance(value, UNCHANGEABLE):
        return value
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Model):
        clone = copy.copy(value)  # Django's own copy: a new _state and a new cache of related objects
        memo[id(value)] = clone
        for name, field_value in vars(value).items():
            if name != "_state":
                clone.__dict__[name] = _copy(field_value, memo)
        clone._state.fields_cache = {name: _copy(related, memo)
                                     for name, related in value._state.fields_cache.items()}
        return clone
    if isinstance(value, dict):
        clone = memo[id(value)] = {}
        clone.update((key, _copy(item, memo)) for key, item in value.items())
        return clone
    if isinstance(value, list):
        clone = memo[id(value)] = []
        clone.extend(_copy(item, memo) for item in value)
        return clone
    if isinstance(value, tuple):
        return tuple(_copy(item, memo) for item in value)
    return copy.deepcopy(value, memo)


def sessions_of(users):
    """name -> the session key of a login of that user, made now (inside `built_once`, so kept for the
    module and rolled back with it)."""
    keys = {}
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        keys[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return keys


def log_in(client, session_key):
    """Log `client` in with a session made by `sessions_of`; what a case changes in it is rolled back with the
    case."""
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
