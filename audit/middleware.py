"""Sets the request context (id, client IP, user agent) for the duration of each request."""

from __future__ import annotations

from audit.context import (
    RequestContext,
    client_ip,
    request_id_from,
    reset_request_context,
    set_request_context,
)


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        context = RequestContext(
            request_id=request_id_from(request),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        )
        request.request_id = context.request_id
        token = set_request_context(context)
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-ID"] = context.request_id
        return response
