"""Small HTTP pieces every surface shares: JSON answers for what Django would answer in HTML."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

_NUL = "\x00"


def json_methods(*methods: str) -> Callable:
    """Django's ``require_http_methods``, answering other methods with a JSON 405 and ``Allow``, for
    public views without a session (no CSRF token to check: they change nothing)."""
    allowed = {method.upper() for method in methods}
    if "GET" in allowed:
        allowed.add("HEAD")

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in allowed:
                response = JsonResponse({"detail": f"Method {request.method!r} not allowed."}, status=405)
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            return view(request, *args, **kwargs)

        return csrf_exempt(wrapped)

    return decorator


class RefuseNulMiddleware:
    """A NUL character (``%00``) in a path or query string names nothing this server stores
    (PostgreSQL keeps no NUL in text): the path is a 404 and the query a 400, in JSON under
    ``/api/`` and ``/scim/``, before any view or database sees it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _NUL in request.path_info:
            return JsonResponse({"detail": "Not Found"}, status=404)
        if "%00" in request.META.get("QUERY_STRING", ""):  # a raw NUL never gets past the server
            return JsonResponse({"detail": "The query may not contain the NUL character (%00)."}, status=400)
        return self.get_response(request)


class BodyTooLargeMiddleware:
    """A body over ``HTTP_MAX_BODY_BYTES`` is a 413 ``{"detail": …}`` (Prefect's error shape, and the
    control plane's) on every route, however the request came in: the ASGI front
    (``core.asgi.BufferedBody``) refuses it before reading it; this refuses it from WSGI and the test
    client, by its announced length, before any view reads it. Django's own cap
    (``DATA_UPLOAD_MAX_MEMORY_SIZE``) is set to the same size so it never answers first."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.max_bytes = settings.HTTP_MAX_BODY_BYTES

    def __call__(self, request):
        try:
            announced = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            announced = 0
        if announced > self.max_bytes:
            return JsonResponse(
                {"detail": f"The request body may be at most {self.max_bytes} bytes."}, status=413
            )
        return self.get_response(request)
