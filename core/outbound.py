"""Outbound HTTP calls the server makes on a workspace's behalf (automation webhooks and
notifications; incoming-webhook work and others may reuse it): they are not a way into the network
the server runs in, and a block's secrets go only where the block sends them.

* The host is resolved once and every address it resolves to must be a public one
  (``ipaddress``'s ``is_global``): loopback, private, link-local (the cloud metadata address
  169.254.169.254 among them), site-local, shared, multicast and reserved ranges are refused, unless
  the operator allows a range with ``OUTBOUND_WEBHOOK_ALLOWED_CIDRS`` (for example ``127.0.0.1/32``
  on a laptop). An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``,
  IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the IPv4
  address too: ``64:ff9b::10.0.0.1`` is refused as 10.0.0.1 is, while ``64:ff9b::8.8.8.8`` (what
  DNS64 answers on an IPv6-only network) is called. The connection goes to the address that was
  checked (TLS still verifies the host name), so a DNS answer that changes between the check and
  the call cannot slip past it.
* Redirects are followed by hand, at most ``MAX_REDIRECTS``, each new location checked the same
  way, and only within the origin the caller named (scheme, host and port; an ``http`` URL on port
  80 may move to ``https`` on 443 of the same host): a redirect to another origin is not followed
  and the call fails saying where it was sent. The caller's headers (``Authorization``, cookies, a
  custom webhook's templated headers) and body (a PagerDuty routing key, a form with secrets) hold
  secrets that are the named origin's alone, and a 307 or 308 must send the body again, so
  stripping ``Authorization`` as browsers do would not be enough. Prefect's Webhook block follows
  no redirect at all; same-origin ones (a trailing slash, a moved path) are followed here. The
  method changes as httpx and requests change it: 303 and 302 become ``GET`` (``HEAD`` stays), 301
  turns a ``POST`` into ``GET``, 307 and 308 keep method and body; a call that becomes ``GET``
  drops its body and the headers that describe it.
* A timeout on every connect, read and write (``timeout``, ``TIMEOUT_SECONDS`` by default), a
  deadline for the whole call, redirects included (``OUTBOUND_WEBHOOK_DEADLINE_SECONDS``,
  ``DEADLINE_SECONDS`` by default), so a receiver that trickles its answer a byte at a time holds
  a worker no longer than that, and a limit on the response body read (``MAX_RESPONSE_BYTES``).
* Errors say which host was refused and why, never the URL's path, query or credentials (which may
  hold a block's secrets): ``OutboundRefused`` and ``OutboundFailed`` carry a URL redacted to its
  scheme, host and port (``redacted``). The host is kept: it is what a user needs to see where the
  call went.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings

TIMEOUT_SECONDS = 10.0
#: The whole call, redirects included, when ``OUTBOUND_WEBHOOK_DEADLINE_SECONDS`` is not set.
DEADLINE_SECONDS = 30.0
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Headers that describe a body, dropped with it when a redirect turns the call into a GET.
_BODY_HEADERS = {"content-type", "content-length", "transfer-encoding", "content-encoding"}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class OutboundRefused(Exception):
    """The call was not made: the address is not one the server may call."""


class OutboundFailed(Exception):
    """The call was made and failed (timeout, deadline, connection, too large an answer, a redirect
    to another origin)."""


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
    """The URL's scheme, host and port, with ``/…`` when it had more: its credentials, path and
    query are left out, for that is where a webhook's secret sits (Slack's, Teams' and Discord's
    URLs are themselves the secret; a custom webhook may put one anywhere after the host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(not a valid URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    rest = parts.path not in {"", "/"} or parts.query or parts.fragment
    return urlunsplit((parts.scheme, host, "", "", "")) + ("/…" if rest else "")


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(c.strip(), strict=False) for c in settings.OUTBOUND_WEBHOOK_ALLOWED_CIDRS if c
    ]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches (mapped, compatible, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _refusal(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "a private address"
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return "not a public address"
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the server may not call this address, or None."""
    embedded = _embedded_ipv4(address)
    if any(a in network for network in _allowed_networks() for a in (address, embedded) if a is not None):
        return None
    if embedded is not None:
        reason = _refusal(embedded)
        if reason is not None:
            return f"{reason} ({embedded})"
        if embedded == address.ipv4_mapped or address in _NAT64:  # type: ignore[union-attr]
            # The IPv4 address is the one reached; the IPv6 form says nothing more (Python counts
            # NAT64's prefix as reserved, with the rest of ::/8).
            return None
    return _refusal(address)


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


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def _same_origin(named: str, location: str) -> bool:
    """Whether ``location`` is the origin of ``named``, or its move from http:80 to https:443."""
    (scheme, host, port), (new_scheme, new_host, new_port) = _origin(named), _origin(location)
    if host != new_host:
        return False
    return (scheme, port) == (new_scheme, new_port) or (scheme, port, new_scheme, new_port) == (
        "http", 80, "https", 443,
    )  # fmt: skip


def _pinned(url: str) -> tuple[str, str, str]:
    """The URL with its host replaced by the checked address, the Host header, the TLS name."""
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise OutboundRefused(f"{redacted(url)} is not a URL the server can call") from None
    if parts.scheme not in {"http", "https"}:
        raise OutboundRefused(f"Only http and https URLs are called, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise OutboundRefused("The URL has no host")
    port = explicit_port or _DEFAULT_PORTS[parts.scheme]
    address = resolve_checked(host, port)
    netloc_host = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{netloc_host}:{port}", parts.path or "/", parts.query, ""))
    host_header = f"[{host}]" if ":" in host else host
    if explicit_port is not None:
        host_header = f"{host_header}:{explicit_port}"
    return pinned, host_header, host


def _redirect_method(status_code: int, method: str) -> str:
    """httpx's and requests' rule: 303 and 302 become GET (HEAD stays), a POST answered 301 too."""
    if status_code in {302, 303} and method != "HEAD":
        return "GET"
    if status_code == 301 and method == "POST":
        return "GET"
    return method


# --- the deadline ------------------------------------------------------------------------------------


class _Deadline:
    """When the whole call must be over: every socket operation gets at most the time left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def bound(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise error(f"the call's {self.seconds:g} s deadline passed")
        return left if timeout is None else min(timeout, left)

    def reason(self) -> str:
        return (
            f"the call took longer than its {self.seconds:g} s deadline (OUTBOUND_WEBHOOK_DEADLINE_SECONDS)"
        )


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        stream = self._stream.start_tls(
            ssl_context, server_hostname, self._deadline.bound(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._backend, self._deadline = httpcore.SyncBackend(), deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None):
        raise httpcore.ConnectError("Outbound calls use TCP only")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _transport(deadline: _Deadline) -> httpx.HTTPTransport:
    """httpx's transport over a connection pool whose sockets never wait past the deadline (httpx's
    own timeouts apply to each read, so they alone cannot bound a trickled answer)."""
    transport = httpx.HTTPTransport(trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        raise RuntimeError("This httpx no longer keeps its connection pool in HTTPTransport._pool")
    transport._pool.close()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_DeadlineBackend(deadline)
    )
    return transport


def _failure(error: httpx.HTTPError, deadline: _Deadline) -> str:
    if isinstance(error, httpx.TimeoutException) and deadline.passed():
        return f"{type(error).__name__}, {deadline.reason()}"
    return type(error).__name__


# --- the call ----------------------------------------------------------------------------------------


def outbound_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> OutboundResponse:
    """Make the call, refusing any address the server may not reach (on every redirect too), within
    ``timeout`` for each connect, read and write and the deadline for the whole."""
    deadline = _Deadline(float(getattr(settings, "OUTBOUND_WEBHOOK_DEADLINE_SECONDS", DEADLINE_SECONDS)))
    redirects: list[str] = []
    current, method = url, method.upper()
    body = content.encode() if isinstance(content, str) else content
    sent_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    transport = _transport(deadline)
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            pinned, host_header, sni = _pinned(current)
            if redirects and not _same_origin(url, current):
                raise OutboundFailed(
                    f"{redirects[-1]} redirected the call to {redacted(current)}, another origin, which is not"
                    " followed: the call's headers and body go only to the origin it names"
                )
            if deadline.passed():
                raise OutboundFailed(f"Calling {redacted(current)} failed: {deadline.reason()}")
            request = client.build_request(
                method, pinned, headers={**sent_headers, "Host": host_header}, content=body,
                extensions={"sni_hostname": sni},
            )  # fmt: skip
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise OutboundFailed(
                    f"Calling {redacted(current)} failed: {_failure(error, deadline)}"
                ) from error
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    redirects.append(redacted(current))
                    current = urljoin(current, location)
                    new_method = _redirect_method(response.status_code, method)
                    if new_method != method and new_method == "GET":
                        body = None
                        sent_headers = {
                            k: v for k, v in sent_headers.items() if k.lower() not in _BODY_HEADERS
                        }
                    method = new_method
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
                        f"Reading the answer of {redacted(current)} failed: {_failure(error, deadline)}"
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
