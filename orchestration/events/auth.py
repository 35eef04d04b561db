"""Who is on an events websocket: the same API keys, tenant resolution and scopes as the HTTP API.

Two handshakes reach ``/events/in`` and ``/events/out``:

* **prefect subprotocol** (self-hosted clients, and every ``/events/out``): the socket is accepted with
  the subprotocol ``prefect``, the first message is ``{"type": "auth", "token": <key or null>}`` and is
  answered ``{"type": "auth_success"}``. A null token falls back to an ``Authorization: bearer`` header
  on the upgrade request.
* **Cloud mode** (``/events/in`` of a client whose API URL is under ``PREFECT_CLOUD_API_URL``): no
  subprotocol, no auth message; the key is in the upgrade header ``Authorization: bearer <key>``
  (the scheme in any case). The first frame is already an event.

Whatever fails (no key, a bad key, an unknown workspace, a workspace of another tenant, a missing
scope, a refused address) is refused the same way. Who may connect is the access gate's decision
(``access.gate.authorize_token``), the same as for the HTTP API. A database that cannot be asked (a
lost connection) decides nothing: ``authorize`` raises ``SocketUnavailable``, which the sockets answer
as HTTP answers a lost connection, retryably (close code 1013, "try again later"), never as a refusal
of the key and never as a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from access.gate import Surface, authorize_token
from audit.context import (
    RequestContext,
    new_request_id,
    reset_request_context,
    scope_client_ip,
    set_credential,
    set_request_context,
)
from core import dbpool
from core.credentials import asgi_header
from core.credentials import bearer_token as parse_bearer

PREFECT_SUBPROTOCOL = "prefect"
AUTH_FAILED_REASON = "Invalid API key, or no access to this workspace"

# Scopes that let a principal on a socket: any one of them.
EVENTS_IN_SCOPES = ("run_flows", "manage_events")
EVENTS_OUT_SCOPES = ("see_events",)


UNAVAILABLE_REASON = "The database is unavailable; retry shortly."


class SocketUnavailable(Exception):
    """The gate could not read the database (a lost connection): nothing was decided, try again."""


@dataclass(frozen=True)
class SocketGrant:
    workspace_id: uuid.UUID
    account_id: uuid.UUID
    token: str = field(repr=False)  # kept to check the key again on a long-lived socket
    plan: str = ""  # the account's plan when granted: its rate limits
    plan_limits: dict | None = None  # and the account's contract limits


def header(scope: dict, name: str) -> str | None:
    return asgi_header(scope, name)


def bearer_token(scope: dict) -> str | None:
    """The key of an ``Authorization: bearer <key>`` upgrade header (any case of "bearer")."""
    return parse_bearer(asgi_header(scope, "authorization")) or None


def wants_prefect_subprotocol(scope: dict) -> bool:
    return PREFECT_SUBPROTOCOL in [p.strip() for p in scope.get("subprotocols") or ()]


def client_ip(scope: dict) -> str | None:
    """The client address, by the same trusted-proxy rules as HTTP requests."""
    return scope_client_ip(scope)


def socket_request_context(scope: dict) -> RequestContext:
    """The request facts of a websocket connection, for what its authorization audits."""
    headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers") or ()}
    return RequestContext(
        request_id=new_request_id(headers.get(b"x-request-id")),
        ip=scope_client_ip(scope),
        user_agent=(headers.get(b"user-agent") or "")[:512],
    )


def authorize_sync(
    *,
    token: str | None,
    account_ref: str,
    workspace_ref: str,
    scopes: tuple[str, ...],
    ip: str | None,
    context: RequestContext | None = None,
) -> SocketGrant | None:
    """The grant for ``token`` on the workspace the path names, or None. ``context``: the
    connection's request facts, which what this audits (a refused address, a key's new address)
    carries. Raises ``SocketUnavailable`` when the database could not be asked."""
    if not token:
        return None
    token_ = set_request_context(context or RequestContext(ip=ip))
    try:
        return _authorize(token, account_ref, workspace_ref, scopes, ip)
    except (OperationalError, InterfaceError) as error:
        # The broken connection is dropped when this call ends (``database_sync_to_async`` closes
        # an unusable one), and the pool's other idle ones are checked now, as HTTP does.
        dbpool.connection_lost()
        raise SocketUnavailable(UNAVAILABLE_REASON) from error
    finally:
        reset_request_context(token_)
        set_credential(None)


def _authorize(token: str, account_ref: str, workspace_ref: str, scopes: tuple[str, ...], ip: str | None):
    _key, decision = authorize_token(
        token, account_ref, workspace_ref, scopes, ip=ip, surface=Surface.WEBSOCKET
    )
    if not decision.allowed:
        return None
    return SocketGrant(
        workspace_id=decision.workspace.pk,
        account_id=decision.account.pk,
        token=token,
        plan=decision.account.plan,
        plan_limits=decision.account.plan_limits,
    )


authorize = database_sync_to_async(authorize_sync)
