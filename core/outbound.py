"""Outbound HTTP calls the server makes on a workspace's behalf (automation webhooks and
notifications; incoming-webhook work and others may reuse it): they are not a way into the network
the server runs in.

* The host is resolved once and every address it resolves to must be a public one
  (``ipaddress``'s ``is_global``): loopback, private, link-local (the cloud metadata address
  169.254.169.254 among them), shared, multicast and reserved ranges are refused, unless the
  operator allows a range with ``OUTBOUND_WEBHOOK_ALLOWED_CIDRS`` (for example ``127.0.0.1/32`` on a
  laptop). The connection goes to the address that was checked (TLS still verifies the host
  name), so a DNS answer that changes between the check and the call cannot slip past it.
* Redirects are followed by hand, at most ``MAX_REDIRECTS``, each new location checked the same way.
* A timeout on every call and a limit on the response body read (``MAX_RESPONSE_BYTES``).
* Errors say which address was refused and why, never the URL's query or credentials (which may
  hold a block's secrets): ``OutboundRefused`` and ``OutboundFailed`` carry a redacted URL.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The call was not made: the address is not one the server may call."""


class OutboundFailed(Exception):
    """The call was made and failed (timeout, connection, too large an answer)."""


@dataclass
class OutboundResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes
    truncated: bool = False
    url: str = ""
    redirects: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def redacted(url: str) -> str:
    """The URL with its credentials, path beyond the first segment and query left out (where a
    webhook's secret usually sits: Slack's and Teams' URLs are themselves the secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    first = "/".join(parts.path.split("/")[:2])
    suffix = "/…" if parts.path.rstrip("/") != first.rstrip("/") or parts.query else ""
    return urlunsplit((parts.scheme, host, first, "", "")) + suffix


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(c.strip(), strict=False) for c in settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS if c
    ]


def address_refusal(address: IPAddress) -> str | None:
    """Why the server may not call this address, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return "not a public address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def resolve_checked(host: str, port: int) -> IPAddress:
    """The first address of ``host``, once every address it resolves to has been checked."""
    addresses = _resolve(host, port)
    if not addresses:
        raise OutboundFailed(f"{host} could not be resolved")
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise OutboundRefused(f"{host} resolves to {address}, {reason}, which the server does not call")
    return addresses[0]


def _pinned(url: str) -> tuple[str, str, str]:
    """The URL with its host replaced by the checked address, the Host header, the TLS name."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundRefused(f"Only http and https URLs are called, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise OutboundRefused("The URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port)
    netloc_host = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{netloc_host}:{port}", parts.path or "/", parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    return pinned, host_header, host


def outbound_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> OutboundResponse:
    """Make the call, refusing any address the server may not reach (on every redirect too)."""
    redirects: list[str] = []
    current, method = url, method.upper()
    body = content.encode() if isinstance(content, str) else content
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            pinned, host_header, sni = _pinned(current)
            request = client.build_request(
                method, pinned, headers={**(headers or {}), "Host": host_header}, content=body,
                extensions={"sni_hostname": sni},
            )  # fmt: skip
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise OutboundFailed(f"Calling {redacted(current)} failed: {type(error).__name__}") from error
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    redirects.append(redacted(current))
                    current = urljoin(current, location)
                    if response.status_code == 303 or (
                        response.status_code in {301, 302} and method not in {"GET", "HEAD"}
                    ):
                        method, body = "GET", None
                    continue
                chunks, size, truncated = [], 0, False
                try:
                    for chunk in response.iter_bytes():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > max_bytes:
                            truncated = True
                            break
                except httpx.HTTPError as error:
                    raise OutboundFailed(
                        f"Reading the answer of {redacted(current)} failed: {type(error).__name__}"
                    ) from error
                return OutboundResponse(
                    status_code=response.status_code,
                    headers=dict(response.headers),
                    content=b"".join(chunks)[:max_bytes],
                    truncated=truncated,
                    url=redacted(current),
                    redirects=redirects,
                )
            finally:
                response.close()
    raise OutboundFailed(f"More than {MAX_REDIRECTS} redirects from {redacted(url)}")
