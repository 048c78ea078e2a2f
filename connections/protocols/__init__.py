"""Protocol classes, one module per kind, found through the registry.

Importing this package imports every protocol module so each registers itself.
"""
from connections.protocols import registry  # noqa: F401
from connections.protocols.base import ConnectorError, Database, FileStore  # noqa: F401

from connections.protocols import local, postgres, sftp, sqlite  # noqa: F401,E402  isort:skip
