"""Protocol classes, one module per kind, found through the registry.

Every module in this package is imported here, so each registers its classes; adding a protocol is
adding a module. What a protocol declares is documented on `base.Connector`.
"""
import importlib
import pkgutil

from connections.protocols import registry  # noqa: F401
from connections.protocols.base import (  # noqa: F401
    DATABASE, FILES, KEY, MAIL, SHELL, TEXT, Capability, ConnectorError, Database, FileStore,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
