"""The one gate: who is calling, and may they do this, here, from there.

Every surface asks here: the HTTP view bases (``access.views``), the event websockets'
handshake, the worker poll answered before Django (``orchestration.api.poll_fast_path``) and the
console's list of workspaces. The steps, in order, for a workspace:

1. **Authenticate**: a bearer key (``authenticate_key``), or a browser session that Django's
   session middleware and DRF's CSRF-checking session authentication already vouched for.
2. **Resolve** the account and workspace the path names (id or handle) and the principal's access
   there (``accounts.selectors.workspace_access``, narrowed to a scoped-down key's scopes); no
   access and no such workspace are the same ``NOT_FOUND``.
3. **The account's door**: its IP allowlist (a refusal is audited) and, for a browser session, its
   SSO enforcement. Both are ``FORBIDDEN`` with a detail naming why.
4. **The need**: the scope (workspace) or permission (account) the operation declares, or any one
   of several (the websockets), or ``MEMBERS`` for anyone with access. ``FORBIDDEN`` otherwise.

``memory_only=True`` answers from what is remembered (``accounts.authcache``) without any I/O, and
answers ``UNKNOWN`` whenever the full gate would need a read, a write or an audit record to decide
(a key, access or allowlist policy not remembered, a key's use or an allowlist entry's
``last_seen`` due to be stamped, a browser session, a refusal). So a memory-only ``ALLOW`` is
exactly the full gate's ``ALLOW`` without the writes, and it never refuses on its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from accounts import authcache
from accounts.api_keys.models import ApiKey
from accounts.api_keys.selectors import (
    api_key_can_act,
    api_key_find,
    api_key_find_remembered,
    api_key_use_due,
)
from accounts.api_keys.services import api_key_record_use
from accounts.ip_allowlist import allowed_from_memory, check_request
from accounts.models import ScimToken
from accounts.scim.services import scim_settings, scim_token_authenticate
from accounts.selectors import WorkspaceAccess, account_permissions_of, workspace_access, workspaces_of
from accounts.sso import enforcement
from audit.actors import SCIM
from audit.context import Credential, set_credential
from billing import entitlements
from core.ids import as_uuid
from tenants.models import Account, Workspace
from tenants.selectors import resolve_account, resolve_workspace

MEMBERS = "__members__"
"""The need of an operation any principal with access to the tenant may call."""

NOT_FOUND_DETAIL = "Not Found"


class Surface(enum.StrEnum):
    API = "api"
    WEBSOCKET = "websocket"
    CONSOLE = "console"
    SCIM = "scim"


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # the SCIM surface's 401 (the APIs' is DRF's, before the gate)
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNKNOWN = "unknown"  # memory-only: the full gate must decide


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    detail: str = ""
    reason: str = ""  # what refused: "not_found", "ip_allowlist", "sso", "scope", "permission"
    account: Account | None = None
    workspace: Workspace | None = None
    access: WorkspaceAccess | None = None
    permissions: frozenset[str] = frozenset()

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


UNKNOWN = Decision(Outcome.UNKNOWN)
NOT_FOUND = Decision(Outcome.NOT_FOUND, NOT_FOUND_DETAIL, "not_found")


@dataclass(frozen=True)
class Caller:
    """Who is asking, from where, through which surface: with an ``api_key``, a browser session
    (its Django request, ``session_request``, which the SSO step reads), or neither (the account's
    identity provider over SCIM, with a SCIM token)."""

    principal: Any
    ip: str | None
    surface: Surface
    api_key: ApiKey | None = None
    session_request: Any = field(default=None, repr=False)


# --- 1. authentication -----------------------------------------------------------------------------


def authenticate_key(token: str | None, *, ip: str | None, account_ref: str | None = None) -> ApiKey | None:
    """The usable key ``token`` names, or None for a missing, malformed, unknown, expired or revoked
    key and for a key whose owner can no longer act. Records the use when due (``account_ref``, the
    account the request acts in, is where a user key's new address is audited) and marks the audit
    context's credential."""
    if not token:
        return None
    key = api_key_find(token)
    now = timezone.now()
    if key is None or not api_key_can_act(key, now):
        return None
    if api_key_use_due(key, now, ip):
        api_key_record_use(key, now=now, ip=ip, account_ref=account_ref)
    set_credential(Credential(method="api_key", api_key_id=str(key.pk)))
    return key


def authenticate_key_from_memory(token: str | None, *, ip: str | None) -> ApiKey | None:
    """``authenticate_key`` from memory: the key when remembered, usable and with no use to record
    now; None when the full gate must decide (it may still accept)."""
    if not token:
        return None
    key = api_key_find_remembered(token)
    if not isinstance(key, ApiKey):
        return None
    now = timezone.now()
    if not api_key_can_act(key, now) or api_key_use_due(key, now, ip):
        return None
    return key


# --- 2. resolution ---------------------------------------------------------------------------------


def _access_memo_key(caller: Caller, account_ref: str, workspace_ref: str) -> tuple:
    return (caller.api_key.pk, account_ref, workspace_ref)


def _workspace_access(caller: Caller, account_ref: str, workspace_ref: str):
    """``(workspace, access)`` for the caller on the workspace the path names, or None. With a key
    the answer is remembered (``accounts.authcache``)."""

    def load():
        account = resolve_account(account_ref)
        workspace = resolve_workspace(account, workspace_ref) if account is not None else None
        access = workspace_access(caller.principal, workspace) if workspace is not None else None
        if access is None:
            return None
        if caller.api_key is not None and caller.api_key.scopes is not None:
            # A scoped-down key: what its owner may do, narrowed to the key's scopes.
            access = access.restricted_to(caller.api_key.scopes)
        return workspace, access

    if caller.api_key is None:
        return load()
    return authcache.memo("workspace-access", _access_memo_key(caller, account_ref, workspace_ref), load)


# --- 3. the account's door -------------------------------------------------------------------------


def _door(caller: Caller, account: Account, *, allowlist_exempt: bool) -> Decision | None:
    """None when the caller may come into ``account`` from where it is; else the refusal."""
    if not allowlist_exempt:
        detail = check_request(account, caller.ip, actor=caller.principal, surface=caller.surface)
        if detail is not None:
            return Decision(Outcome.FORBIDDEN, detail, "ip_allowlist", account=account)
    if caller.session_request is not None and not enforcement.session_may_act(
        caller.session_request, account
    ):
        # A browser session acts in an account that enforces SSO only if that account's identity
        # provider started it, or as an Owner's break-glass session.
        return Decision(Outcome.FORBIDDEN, enforcement.refusal_detail(account), "sso", account=account)
    return None


# --- 4. the need -----------------------------------------------------------------------------------


def _meets(held, need: str | tuple[str, ...]) -> bool:
    if need == MEMBERS:
        return True
    needs = (need,) if isinstance(need, str) else need
    return any(held(one) for one in needs)


# --- the gate --------------------------------------------------------------------------------------


def authorize_workspace(
    caller: Caller,
    account_ref: str,
    workspace_ref: str,
    need: str | tuple[str, ...],
    *,
    allowlist_exempt: bool = False,
) -> Decision:
    """May ``caller`` do what needs ``need`` (a scope, any of several, or ``MEMBERS``) in the
    workspace the path names?"""
    resolved = _workspace_access(caller, account_ref, workspace_ref)
    if resolved is None:
        return NOT_FOUND
    workspace, access = resolved
    refused = _door(caller, workspace.account, allowlist_exempt=allowlist_exempt)
    if refused is not None:
        return refused
    if not _meets(access.has, need):
        return Decision(
            Outcome.FORBIDDEN,
            f"Missing the scope {_named(need)!r} in this workspace.",
            "scope",
            account=workspace.account,
            workspace=workspace,
            access=access,
        )
    return Decision(Outcome.ALLOW, account=workspace.account, workspace=workspace, access=access)


def authorize_workspace_from_memory(
    caller: Caller, account_ref: str, workspace_ref: str, need: str | tuple[str, ...]
) -> Decision:
    """``authorize_workspace`` from memory alone: ``ALLOW`` exactly when the full gate would allow
    without any I/O, ``UNKNOWN`` otherwise (never a refusal)."""
    if caller.api_key is None:
        return UNKNOWN
    resolved = authcache.peek("workspace-access", _access_memo_key(caller, account_ref, workspace_ref))
    if resolved is authcache.MISSING or resolved is None:
        return UNKNOWN
    workspace, access = resolved
    if not allowed_from_memory(workspace.account, caller.ip) or not _meets(access.has, need):
        return UNKNOWN
    return Decision(Outcome.ALLOW, account=workspace.account, workspace=workspace, access=access)


def authorize_account(
    caller: Caller, account_ref: str, need: str, *, allowlist_exempt: bool = False
) -> Decision:
    """May ``caller`` do what needs the account permission ``need`` (or ``MEMBERS``) in the
    account the path names?"""
    account = resolve_account(account_ref)
    permissions = account_permissions_of(caller.principal, account) if account is not None else frozenset()
    if not permissions:
        return NOT_FOUND
    refused = _door(caller, account, allowlist_exempt=allowlist_exempt)
    if refused is not None:
        return refused
    if not _meets(permissions.__contains__, need):
        return Decision(
            Outcome.FORBIDDEN,
            f"Missing the permission {_named(need)!r} in this account.",
            "permission",
            account=account,
            permissions=permissions,
        )
    return Decision(Outcome.ALLOW, account=account, permissions=permissions)


def authorize_token(
    token: str | None,
    account_ref: str,
    workspace_ref: str,
    need: str | tuple[str, ...],
    *,
    ip: str | None,
    surface: Surface,
) -> tuple[ApiKey | None, Decision]:
    """Authenticate a bearer key and authorize it in one step (the websockets' handshake); a
    credential that does not authenticate is ``NOT_FOUND`` like everything else they refuse."""
    key = authenticate_key(token, ip=ip, account_ref=account_ref)
    if key is None:
        return None, NOT_FOUND
    caller = Caller(principal=key.owner, ip=ip, surface=surface, api_key=key)
    return key, authorize_workspace(caller, account_ref, workspace_ref, need)


def authorize_scim(
    token: str | None, account_ref: str, *, ip: str | None
) -> tuple[ScimToken | None, Decision]:
    """The SCIM surface: a SCIM token of the account the path names (``UNAUTHENTICATED``
    otherwise, never telling whether the account exists), the plan's SCIM feature, and the
    account's door (its IP allowlist, unless the account exempts SCIM)."""
    scim_token = scim_token_authenticate(token) if token else None
    account_id = as_uuid(account_ref)
    if scim_token is None or account_id is None or scim_token.account_id != account_id:
        return None, Decision(Outcome.UNAUTHENTICATED, "A valid SCIM token of this account is required.")
    account = scim_token.account
    plan = entitlements.check_feature(account, "scim")
    if not plan:
        return scim_token, Decision(Outcome.FORBIDDEN, plan.reason, "plan", account=account)
    caller = Caller(principal=SCIM, ip=ip, surface=Surface.SCIM)
    exempt = scim_settings(account)["exempt_from_ip_allowlist"]
    refused = _door(caller, account, allowlist_exempt=exempt)
    if refused is not None:
        return scim_token, refused
    return scim_token, Decision(Outcome.ALLOW, account=account)


def workspaces_open_to(caller: Caller):
    """``(open, blocked, sso_blocked)``: the caller's ``(workspace, access)`` pairs in accounts it
    may come into from where it is, and by id the accounts whose IP allowlist refuses its address
    (each refusal audited) or, for a browser session, that enforce SSO the session did not come
    from. (What ``GET /api/me/workspaces`` and the console list.)"""
    found, blocked, sso_blocked, decided = [], {}, {}, {}
    for workspace, access in workspaces_of(caller.principal):
        account = workspace.account
        if account.pk not in decided:
            refused = _door(caller, account, allowlist_exempt=False)
            decided[account.pk] = refused.reason if refused is not None else None
        if decided[account.pk] == "sso":
            sso_blocked[account.pk] = account
        elif decided[account.pk] == "ip_allowlist":
            blocked[account.pk] = account
        else:
            found.append((workspace, access))
    return found, blocked, sso_blocked


def _named(need: str | tuple[str, ...]) -> str:
    return need if isinstance(need, str) else " or ".join(need)
