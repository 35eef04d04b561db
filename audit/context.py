"""Who is asking, from where: request facts that audit records and key usage carry."""

from __future__ import annotations

import functools
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


@dataclass(frozen=True)
class Credential:
    """How the request's principal authenticated: ``api_key`` (with the key's id) or ``session``."""

    method: str
    api_key_id: str | None = None


_credential: ContextVar[Credential | None] = ContextVar("credential", default=None)


def set_credential(credential: Credential | None) -> None:
    _credential.set(credential)


def current_credential() -> Credential | None:
    return _credential.get()


def set_request_context(context: RequestContext):
    return _request_context.set(context)


def reset_request_context(token) -> None:
    _request_context.reset(token)


def canonical_ip(value: str) -> str | None:
    """``value`` as an address in Python's spelling, or None. An IPv4-mapped IPv6 address
    (``::ffff:192.0.2.1``, what a dual-stack listener reports for an IPv4 client) is the IPv4
    address it carries, so it matches IPv4 allowlist entries and trusted proxies."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


@functools.cache
def _trusted_networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in spec if entry.strip())


def _is_trusted(ip: str, networks) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


def resolve_client_ip(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client address from the socket peer and the ``X-Forwarded-For`` header.

    With ``TRUSTED_PROXIES`` (CIDRs of the proxies in front of the server): if the peer is one of
    them, walk ``X-Forwarded-For`` from the right, skipping trusted proxies; the first address that
    is not a trusted proxy is the client (a malformed entry ends the walk at the last trusted hop).
    A header sent by anyone else is ignored, so a spoofed header never changes the answer. Without
    ``TRUSTED_PROXIES``, ``TRUSTED_PROXY_COUNT`` hops are taken on trust; with neither, the peer."""
    peer_ip = canonical_ip(peer or "")
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if networks:
        if peer_ip is None or not _is_trusted(peer_ip, networks):
            return peer_ip
        client = peer_ip
        for part in reversed([p for p in (forwarded_for or "").split(",") if p.strip()]):
            hop = canonical_ip(part)
            if hop is None:
                break
            client = hop
            if not _is_trusted(hop, networks):
                break
        return client
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [part for part in (forwarded_for or "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            ip = canonical_ip(forwarded[-hops])
            if ip:
                return ip
    return peer_ip


def client_ip(request) -> str | None:
    """The client address of an HTTP request (see ``resolve_client_ip``)."""
    return resolve_client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope: dict) -> str | None:
    """The client address of an ASGI connection (a websocket), by the same rules."""
    client = scope.get("client")
    forwarded = None
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-forwarded-for":
            forwarded = (
                value.decode("latin-1") if forwarded is None else f"{forwarded},{value.decode('latin-1')}"
            )
    return resolve_client_ip(client[0] if client else None, forwarded)


def request_id_from(request) -> str:
    return new_request_id(request.META.get("HTTP_X_REQUEST_ID"))


def new_request_id(incoming: str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane one, else a new id."""
    if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return uuid.uuid4().hex
