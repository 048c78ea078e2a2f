"""The error a run's stage raises for a reason the user must fix."""
from connections.protocols import ConnectorError


class PipelineError(ConnectorError):
    """A step failed for a reason the user must fix (bad settings), not a connector failure."""
