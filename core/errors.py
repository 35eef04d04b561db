"""One application error hierarchy, rendered to one shape: ``{"detail": ..., "code": ...}``.

Services raise these; API views let them propagate; ``api_exception_handler`` renders them (and
DRF's own errors) with the status below. Prefect wire routes use Prefect's ``detail`` shape, which
this is compatible with.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

INVALID_CREDENTIALS = "Invalid authentication credentials"


class AppError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


class InvalidInput(AppError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class Unprocessable(AppError):
    """A well-formed request whose content cannot be used (unknown names, bad values): 422, as
    Prefect Cloud answers."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"


class NotFound(AppError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class Forbidden(AppError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"


class Conflict(AppError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PlanLimitExceeded(Forbidden):
    default_code = "plan_limit"


def _validation_message(error: DjangoValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


def api_exception_handler(exc, context):
    if isinstance(exc, AppError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response({"detail": _validation_message(exc), "code": "invalid"}, status=400)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        # One answer for missing, malformed, unknown, expired and revoked credentials.
        response = Response({"detail": INVALID_CREDENTIALS}, status=status.HTTP_401_UNAUTHORIZED)
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, Http404):
        return Response({"detail": "Not Found"}, status=status.HTTP_404_NOT_FOUND)
    from rest_framework.views import exception_handler as drf_exception_handler

    return drf_exception_handler(exc, context)


def json_not_found(request, exception=None):
    """404 for paths no route matches; JSON under /api/, HTML elsewhere."""
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": "Not Found"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request):
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": "Internal Server Error"}, status=500)
    from django.views.defaults import server_error

    return server_error(request)
