"""Pagination and error answers for the API (a module of their own: DRF's settings import them while the views
module is still loading)."""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000


def exception_handler(exc, context):
    """Errors as JSON: a model's ValidationError names its fields (400), a protected delete is a conflict."""
    from connections.protocols import ConnectorError
    from runs.orchestration import Refused

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ProtectedError):
        return Response({"detail": str(exc.args[0])}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, (Refused, ConnectorError)):
        return Response({"detail": getattr(exc, "message", str(exc))}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
