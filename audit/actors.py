"""Who made a change that no logged-in user made: a command, the worker, a system job.

HistoryRequestMiddleware gives simple-history the user of a web request. Everything else (manage.py
commands, the django-q2 worker, the scheduler) has no user, so its records carry a "system: ..." label
in `history_change_reason` instead, so the history never shows an unexplained blank author.
"""
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar

SYSTEM_PREFIX = "system: "
_actor = ContextVar("audit_actor", default=None)


@contextmanager
def acting_as(label):
    """Name the system actor for the changes made inside the block, e.g. `with acting_as("seed_demo"):`."""
    token = _actor.set(label)
    try:
        yield
    finally:
        _actor.reset(token)


def system_label():
    label = _actor.get()
    if not label:
        argv = sys.argv or [""]
        program = os.path.basename(argv[0] or "python")
        if program in ("manage.py", "django-admin") and len(argv) > 1:
            label = f"manage.py {argv[1]}"  # the command's name only: its arguments could hold anything
        else:
            label = program
    return SYSTEM_PREFIX + label


def label_system_change(sender, history_instance, history_user=None, **kwargs):
    if history_user is None and not history_instance.history_change_reason:
        history_instance.history_change_reason = system_label()[:100]
