"""Kind name -> protocol class. Modules register their classes on import; see __init__."""
_REGISTRY = {}


def register(cls):
    _REGISTRY[cls.kind] = cls
    return cls


def get(kind):
    return _REGISTRY.get(kind)


def all_kinds():
    return dict(_REGISTRY)


def choices(category=None):
    return [(kind, cls.label) for kind, cls in sorted(_REGISTRY.items(), key=lambda item: item[1].label)
            if category is None or cls.category == category]


def connector_for(connection):
    from connections.protocols.base import ConnectorError

    cls = get(connection.kind)
    if cls is None:
        raise ConnectorError(f"Unknown connection kind {connection.kind!r}")
    return cls(connection)
