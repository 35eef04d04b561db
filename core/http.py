"""Small HTTP pieces every surface shares: JSON answers for what Django would answer in HTML."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

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
