"""Task source kinds: one module per kind (query, files, script, ssh), each a `SourceKind` subclass registered
here; the registry is the only place that knows which kinds exist.

Why here, in tasks/, and not in runs/: the lowest layer that needs the kinds is the task model (the
validator of `Task.source_kind`, `Task.code_of`), then the task form and page; the pipeline only asks a
task's kind to produce its files. This package's `__init__` and `base` import nothing of `runs`, so the
models layer can import them; the kind modules, which call into the pipeline, are imported when the `tasks`
app is ready (`autodiscover`), after every model is loaded, so `runs` importing `tasks` makes no cycle.

Adding a kind: a module in this package with a `@register`-ed subclass of `SourceKind` (see base.py); it is
imported automatically. Its key needs no migration: `Task.source_kind`'s choices are the callable `choices`.
"""
import importlib
import pkgutil

from django.core.exceptions import ImproperlyConfigured

from tasks.source_kinds.base import TEXT_FIELDS, SourceKind, UnknownKind

__all__ = ["DEFAULT", "TEXT_FIELDS", "SourceKind", "choices", "get", "kind_of", "kinds", "register", "unregister"]

DEFAULT = "query"  # the kind a new task starts as (the query kind's key)
KEY_LENGTH = 10  # Task.source_kind's max_length

_registry = {}
_discovered = False


def register(kind_class):
    """Class decorator: register one instance of this SourceKind subclass under its key."""
    kind = kind_class()
    if not kind.key or len(kind.key) > KEY_LENGTH or not kind.label:
        raise ImproperlyConfigured(f"{kind_class.__name__} needs a key of 1 to {KEY_LENGTH} characters and a label")
    existing = _registry.get(kind.key)
    if existing is not None and type(existing).__qualname__ != kind_class.__qualname__:
        raise ImproperlyConfigured(f"Two source kinds use the key {kind.key!r}: {type(existing).__name__} and "
                                   f"{kind_class.__name__}")
    _registry[kind.key] = kind
    return kind_class


def unregister(key):
    """Remove a kind (tests register kinds of their own and remove them after)."""
    _registry.pop(key, None)


def autodiscover():
    """Import every module of this package once, so their `@register` decorators run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def kinds():
    """Every registered kind, in the order of the form's choice list."""
    autodiscover()
    return sorted(_registry.values(), key=lambda kind: (kind.position, kind.label))


def get(key):
    """The registered kind with this key, or None."""
    autodiscover()
    return _registry.get(key)


def kind_of(key):
    """The kind with this key; for a key no module registers, an UnknownKind that fails its runs."""
    return get(key) or UnknownKind(key or "")


def choices():
    """(key, label) of every kind, for the form's choice list (a callable, so registering later counts)."""
    return [(kind.key, kind.label) for kind in kinds()]


def unused_fields(kind):
    """The Task fields some other kind uses and `kind` does not (the form empties them on save)."""
    mine = set(kind.used_fields())
    others = []
    for other in kinds():
        others += [name for name in other.used_fields() if name not in mine and name not in others]
    return others
