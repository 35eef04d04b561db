"""One application error hierarchy, and one table that says how each error answers on each surface.

Services raise ``AppError``s; views let them (and DRF's own errors) propagate; each surface renders
them through ``error_answer`` (the table) and its own shape:

- **control plane** (``/api/accounts/<a>/…`` outside the Prefect routes, ``/api/me``, ``/api/users``):
  ``{"detail": …, "code": …}`` plus any ``extra``, rendered by ``api_exception_handler`` (DRF's
  ``EXCEPTION_HANDLER``). A value that cannot be used is 422, as Prefect Cloud answers.
- **Prefect** (the wire API under each workspace): Prefect's own shapes, ``{"detail": …}`` plus
  ``extra`` (its 422 body carries ``exception_detail``), 409, 423 with ``Retry-After``, and
  ``{"exception_message": …}`` for what its models report missing (``ObjectNotFound``); rendered by
  ``prefect_exception_handler``.
- **SCIM**: RFC 7644 errors, rendered by the SCIM views from the same answer
  (``accounts.api.scim_v2.views``).

The gate's refusals are the same bare ``{"detail": "Not Found"}`` / 401 on every surface, on purpose:
a tenant one may not see must answer exactly like a path that does not exist. An ``AppError``
carries its response headers (``Retry-After``). A lost database connection is a retryable 503 with
``Retry-After`` on every surface, never a 500.
"""

from __future__ import annotations

import enum
import re
import sys
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError, connections
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

from core import dbpool

INVALID_CREDENTIALS = "Invalid authentication credentials"


class AppError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidInput(AppError):
    """Input a service cannot take: Prefect's routes answer 400, the control plane 422 (the table)."""

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


class ObjectNotFound(NotFound):
    """What Prefect's models raise (``ObjectNotFoundError``) rather than its routes: its server
    answers these 404s ``{"exception_message": …}``, without ``detail``. Elsewhere a plain 404."""

    default_code = "not_found"


class Forbidden(AppError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"


class Conflict(AppError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Locked(AppError):
    """Prefect's 423: come back later (a ``Retry-After`` header says when)."""

    status_code = status.HTTP_423_LOCKED
    default_code = "locked"


class TooManyRequests(AppError):
    """429: too many attempts or requests; ``Retry-After`` says when to come back."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, message: str, *, retry_after: int, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PlanLimitExceeded(Forbidden):
    default_code = "plan_limit"


class PaymentRequired(AppError):
    """The account's payment is overdue past its grace period: work that would start something new
    is refused (402) until it pays; what already runs, reads and governance go on."""

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_code = "payment_required"


class UpstreamUnavailable(AppError):
    """A service outside the machine (the payment provider) did not answer or refused for a
    reason the client cannot fix: 503, retry later. Nothing was changed here."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "upstream_unavailable"

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": "30"})
        super().__init__(message, **kwargs)


# --- the table -------------------------------------------------------------------------------------


class Surface(enum.StrEnum):
    CONTROL_PLANE = "control_plane"
    PREFECT = "prefect"
    SCIM = "scim"


# Where a surface answers an error with another status than the error's own.
_STATUS_ON = {
    Surface.CONTROL_PLANE: {InvalidInput: 422, drf_exceptions.ParseError: 422},
    Surface.PREFECT: {drf_exceptions.ParseError: 422},
    Surface.SCIM: {DataError: 400},
}


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    detail: str
    code: str | None = None  # None: the bare {"detail"} answer (DRF's and the gate's own errors)
    extra: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _status_on(surface: Surface, exc: Exception, default: int) -> int:
    for kind, status_code in _STATUS_ON[surface].items():
        if isinstance(exc, kind):
            return status_code
    return default


def error_answer(exc: Exception, surface: Surface) -> ErrorAnswer | None:
    """How ``exc`` answers on ``surface``; None for what is not a client error (a 500)."""
    if isinstance(exc, AppError):
        return ErrorAnswer(
            _status_on(surface, exc, exc.status_code), exc.message, exc.code, exc.extra, exc.headers
        )
    if isinstance(exc, DjangoValidationError):
        return ErrorAnswer(400, _validation_message(exc), "invalid")
    if isinstance(exc, DataError):
        # A value the parsers let through but its column cannot hold (out of range, too long): the
        # statement failed inside its transaction, so nothing was written.
        return ErrorAnswer(
            _status_on(surface, exc, 422),
            "A value is out of range or too long for where it is stored.",
            "out_of_range",
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # A lost or refused database connection, a locked SQLite file: the transaction rolled back,
        # nothing was written; the client retries (Prefect's client does on a 503), as it would
        # against Prefect's server under SQLite contention. A connection that died takes the pool's
        # other idle ones with it (a restart, a terminated backend): they are checked now.
        dbpool.connection_lost()
        return ErrorAnswer(
            503, "The database is unavailable; retry shortly.", "unavailable", headers={"Retry-After": "1"}
        )
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        # One answer for missing, malformed, unknown, expired and revoked credentials.
        return ErrorAnswer(401, INVALID_CREDENTIALS, headers={"WWW-Authenticate": 'Bearer realm="api"'})
    if isinstance(exc, drf_exceptions.ParseError):
        return ErrorAnswer(_status_on(surface, exc, 400), f"Invalid request received: {exc.detail}")
    if isinstance(exc, Http404):
        return ErrorAnswer(404, "Not Found")
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return ErrorAnswer(exc.status_code, detail, headers=headers)
    return None


def _validation_message(error: DjangoValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


def _response(answer: ErrorAnswer, body: dict) -> Response:
    response = Response(body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


def api_exception_handler(exc, context):
    """DRF's exception handler for the control-plane API: ``{"detail", "code", **extra}``."""
    answer = error_answer(exc, Surface.CONTROL_PLANE)
    if answer is None:
        return None
    body = {"detail": answer.detail}
    if answer.code is not None:
        body.update(code=answer.code, **answer.extra)
    return _response(answer, body)


def prefect_exception_handler(exc, context):
    """The exception handler of Prefect's routes: ``{"detail", **extra}`` in Prefect's codes
    (``{"exception_message"}`` for an ``ObjectNotFound``, as Prefect's server answers it)."""
    answer = error_answer(exc, Surface.PREFECT)
    if answer is None:
        return None
    if isinstance(exc, ObjectNotFound):
        return _response(answer, {"exception_message": answer.detail})
    return _response(answer, {"detail": answer.detail, **answer.extra})


def json_not_found(request, exception=None):
    """404 for paths no route matches; JSON under /api/, HTML elsewhere."""
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": "Not Found"}, status=404)
    from django.views.defaults import page_not_found  # Django's HTML pages, only when rendered

    return page_not_found(request, exception)


def json_bad_request(request, exception=None):
    """400 for requests Django refuses before any view (too many fields, a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``): JSON under /api/ and /scim/, HTML elsewhere."""
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": "Bad Request: the request is too large or malformed."}, status=400)
    from django.views.defaults import bad_request  # Django's HTML pages, only when rendered

    return bad_request(request, exception)


def json_csrf_failure(request, reason=""):
    """A browser session's write without its CSRF token: JSON under /api/ and /scim/."""
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": f"CSRF verification failed: {reason}"}, status=403)
    from django.views.csrf import csrf_failure  # Django's HTML page, only when rendered

    return csrf_failure(request, reason)


# Prefect's wire API is served under each workspace; the rest of /api/ is the control plane.
_PREFECT_PATH = re.compile(r"^/api/accounts/[^/]+/workspaces/[^/]+/")


def _database_unavailable(request, exc: Exception) -> HttpResponse:
    """A lost database connection that escaped a view's own handler (a middleware, an ``on_commit``
    hook, the gate's bookkeeping, a response rendered late): the same retryable 503 with
    ``Retry-After`` the views answer, in the shape of the request's surface."""
    for conn in connections.all(initialized_only=True):
        # Drop a connection that died (back to the pool, which discards it), so the next request
        # of this thread opens a new one instead of failing on the broken one.
        conn.close_if_unusable_or_obsolete()
    path = request.path
    surface = (
        Surface.SCIM
        if path.startswith("/scim/")
        else Surface.PREFECT
        if _PREFECT_PATH.match(path)
        else Surface.CONTROL_PLANE
    )
    answer = error_answer(exc, surface)
    assert answer is not None  # the table answers every lost connection
    if surface is Surface.SCIM:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(answer.status),
            "detail": answer.detail,
        }
        response: HttpResponse = JsonResponse(
            body, status=answer.status, content_type="application/scim+json"
        )
    elif path.startswith("/api/"):
        body = {"detail": answer.detail}
        if surface is Surface.CONTROL_PLANE:
            body["code"] = answer.code
        response = JsonResponse(body, status=answer.status)
    else:
        response = HttpResponse(answer.detail, status=answer.status, content_type="text/plain; charset=utf-8")
    for name, value in answer.headers.items():
        response[name] = value
    return response


def json_server_error(request):
    """Django's last resort for an exception no view handled (``handler500``)."""
    exc = sys.exc_info()[1]  # Django calls the handler while it handles the exception
    if isinstance(exc, OperationalError | InterfaceError):
        return _database_unavailable(request, exc)
    if request.path.startswith(("/api/", "/scim/")):
        return JsonResponse({"detail": "Internal Server Error"}, status=500)
    from django.views.defaults import server_error  # Django's HTML pages, only when rendered

    return server_error(request)
