"""Sets the request context (id, client IP, user agent) for the duration of each request."""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware as _AuditlogMiddleware
from django.conf import settings

from audit.context import (
    RequestContext,
    client_ip,
    request_id_from,
    reset_request_context,
    set_credential,
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
        set_credential(None)
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
            set_credential(None)
        response["X-Request-ID"] = context.request_id
        return response


class AuditlogMiddleware(_AuditlogMiddleware):
    """django-auditlog's middleware, with the client address from the trusted-proxy rules (its own
    takes the first ``X-Forwarded-For`` value, which any client can forge)."""

    @staticmethod
    def _get_remote_addr(request):
        if settings.AUDITLOG_DISABLE_REMOTE_ADDR:
            return None
        return client_ip(request)

    @staticmethod
    def _get_remote_port(request):
        return None
