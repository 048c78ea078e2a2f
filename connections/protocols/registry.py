"""Kind name -> protocol class. Each protocol module registers its class on import (see __init__).

A test may register a protocol of its own for a while: `with registry.registered(MyStore): ...`, or
`register(MyStore)` then `unregister(MyStore.kind)`. Nothing is cached from the registry, so forms,
pages, the pipeline and `Connection.objects.with_capability` see the change at once.
"""
import contextlib

_REGISTRY = {}


def register(cls):
    """Add a protocol class under `cls.kind` (usable as a class decorator); a kind is registered once."""
    if not cls.kind or len(cls.kind) > 20:
        raise ValueError(f"A protocol needs a kind of 1 to 20 characters, not {cls.kind!r}")
    known = _REGISTRY.get(cls.kind, cls)
    if (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):  # a reload replaces it
        raise ValueError(f"The kind {cls.kind!r} is already registered by {_REGISTRY[cls.kind].__name__}")
    _REGISTRY[cls.kind] = cls
    return cls


def unregister(kind):
    """Remove a kind; connections of it then show as "no longer available" and cannot run."""
    _REGISTRY.pop(kind, None)


@contextlib.contextmanager
def registered(cls):
    """Register `cls` for the duration of a `with` block (tests)."""
    register(cls)
    try:
        yield cls
    finally:
        unregister(cls.kind)


def get(kind):
    return _REGISTRY.get(kind)


def all_kinds():
    return dict(_REGISTRY)


def kinds_with(capability):
    """Names of the kinds having `capability`, sorted."""
    return sorted(kind for kind, cls in _REGISTRY.items() if capability in cls.capabilities)


def labels_with(capability):
    """Labels of the kinds having `capability`, for messages: "SFTP, FTP / FTPS, ..."."""
    return ", ".join(sorted(cls.label for cls in _REGISTRY.values() if capability in cls.capabilities))


def choices(capability=None):
    return [(kind, cls.label) for kind, cls in sorted(_REGISTRY.items(), key=lambda item: item[1].label)
            if capability is None or capability in cls.capabilities]


def connector_for(connection):
    from connections.protocols.base import ConnectorError

    cls = get(connection.kind)
    if cls is None:
        raise ConnectorError(f"Unknown connection kind {connection.kind!r}")
    return cls(connection)
