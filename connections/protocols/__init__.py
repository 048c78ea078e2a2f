"""Protocol classes, one module per kind, found through the registry.

Every module in this package is imported here, so each registers its classes; adding a protocol is
adding a module.
"""
import importlib
import pkgutil

from connections.protocols import registry  # noqa: F401
from connections.protocols.base import ConnectorError, Database, FileStore  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
