"""Who is asking, from where: request facts that audit records and key usage carry."""

from __future__ import annotations

import ipaddress
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


_request_context: ContextVar[RequestContext] = ContextVar(
    "request_context",
    default=RequestContext(),  # noqa: B039 - frozen, never mutated
)


def current_request_context() -> RequestContext:
    return _request_context.get()


def set_request_context(context: RequestContext):
    return _request_context.set(context)


def reset_request_context(token) -> None:
    _request_context.reset(token)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client address: the socket peer, or the entry ``TRUSTED_PROXY_COUNT`` hops back in
    ``X-Forwarded-For`` when that many trusted proxies stand in front of the server."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            ip = _valid_ip(forwarded[-hops])
            if ip:
                return ip
    return _valid_ip(request.META.get("REMOTE_ADDR", ""))


def request_id_from(request) -> str:
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return uuid.uuid4().hex
