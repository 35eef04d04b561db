"""The view bases every tenant API stands on.

``WorkspaceApiView`` serves ``/api/accounts/<account>/workspaces/<workspace>/…``: before the handler
runs it authenticates the principal, resolves the account and workspace from the URL (by id or by
handle), checks the principal's access and the scope the method needs, and enters the workspace
scope so ``WorkspaceScopedModel.objects`` answers for that workspace only. A principal without
access gets the same 404 as for a workspace that does not exist.

``AccountApiView`` does the same for ``/api/accounts/<account>/…`` with account permissions.

Subclasses declare ``required_scopes`` (workspace) or ``required_permissions`` (account): a map from
HTTP method to the scope or permission it needs, or ``MEMBERS`` for any principal with access.
Overriding ``get_queryset``/``get_object`` is refused at class definition: use
``safely_get_queryset`` (scoped) and name any escape hatch ``dangerously_…``.
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.views import APIView

from accounts import authcache
from accounts.api_keys.models import ApiKey
from accounts.selectors import account_permissions_of, workspace_access
from tenants.models import Account, Workspace
from tenants.scoping import _current_workspace_id
from tenants.selectors import resolve_account, resolve_workspace

MEMBERS = "__members__"
"""Marker for a method any principal with access to the tenant may call."""

_NOT_FOUND = "Not Found"


def resolve_workspace_access(principal, account_ref: str, workspace_ref: str, *, api_key=None):
    """``(workspace, access)`` for the principal on the workspace the URL names, or None when it
    does not exist or the principal has no access there. With an API key the answer is memoised
    (see ``accounts.authcache``)."""

    def load():
        account = resolve_account(account_ref)
        workspace = resolve_workspace(account, workspace_ref) if account is not None else None
        access = workspace_access(principal, workspace) if workspace is not None else None
        if access is None:
            return None
        if getattr(api_key, "scopes", None) is not None:
            # A scoped-down key: what its owner may do, narrowed to the key's scopes.
            access = access.restricted_to(api_key.scopes)
        return workspace, access

    if isinstance(api_key, ApiKey):
        return authcache.memo("workspace-access", (api_key.pk, account_ref, workspace_ref), load)
    return load()


class _TenantApiView(APIView):
    _forbidden_overrides: ClassVar[tuple[str, ...]] = ("get_queryset", "get_object")
    _declaration: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls._forbidden_overrides:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); tenant views use safely_get_queryset() so that "
                    "every query stays inside the tenant scope"
                )

    # A view that must answer even to a refused address (``ip_allowlist/my_access``) says so.
    ip_allowlist_exempt: ClassVar[bool] = False

    def _check_ip_allowlist(self, request, account) -> None:
        """The account's IP allowlist, for a principal that has access there (others got 404)."""
        if self.ip_allowlist_exempt:
            return
        from accounts.ip_allowlist import check_request
        from audit.context import client_ip

        detail = check_request(account, client_ip(request), actor=request.user, surface="api")
        if detail is not None:
            raise PermissionDenied(detail)

    @staticmethod
    def _check_sso_session(request, account) -> None:
        """A browser session (no API key) acts in an account that enforces SSO only if that
        account's identity provider started it, or as an Owner's break-glass session."""
        if request.auth is not None:
            return
        from accounts.sso import enforcement

        if not enforcement.session_may_act(request._request, account):
            raise PermissionDenied(enforcement.refusal_detail(account))

    @classmethod
    def declared_requirement(cls, method: str) -> str | None:
        declared = getattr(cls, cls._declaration, None) or {}
        return declared.get(method.upper())

    def requirement_for(self, request) -> str:
        method = "GET" if request.method == "HEAD" else request.method
        required = self.declared_requirement(method)
        if required is None:
            # Undeclared methods are not served (the meta-test keeps declarations complete).
            raise PermissionDenied("This operation is not permitted.")
        return required


class WorkspaceApiView(_TenantApiView):
    required_scopes: ClassVar[dict[str, str]] = {}
    _declaration = "required_scopes"

    account: Account
    workspace: Workspace

    def dispatch(self, request, *args, **kwargs):
        self._account_ref = kwargs.pop("account_ref")
        self._workspace_ref = kwargs.pop("workspace_ref")
        self._scope_token = None
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            if self._scope_token is not None:
                _current_workspace_id.reset(self._scope_token)

    def initial(self, request, *args, **kwargs):
        # Authentication and the authenticated check run first: an anonymous caller learns nothing.
        super().initial(request, *args, **kwargs)
        resolved = resolve_workspace_access(
            request.user, self._account_ref, self._workspace_ref, api_key=request.auth
        )
        if resolved is None:
            raise NotFound(_NOT_FOUND)
        workspace, access = resolved
        self._check_ip_allowlist(request, workspace.account)
        self._check_sso_session(request, workspace.account)
        required = self.requirement_for(request)
        if required != MEMBERS and not access.has(required):
            raise PermissionDenied(f"Missing the scope {required!r} in this workspace.")
        self.account, self.workspace, self.access = workspace.account, workspace, access
        request.workspace = workspace
        self._scope_token = _current_workspace_id.set(workspace.pk)

    def safely_get_queryset(self, model):
        """``model.objects`` for the current workspace (the scope is set; this reads clearer)."""
        return model.objects.all()


class AccountApiView(_TenantApiView):
    required_permissions: ClassVar[dict[str, str]] = {}
    _declaration = "required_permissions"

    account: Account

    def dispatch(self, request, *args, **kwargs):
        self._account_ref = kwargs.pop("account_ref")
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        account = resolve_account(self._account_ref)
        permissions = account_permissions_of(request.user, account) if account is not None else frozenset()
        if not permissions:
            raise NotFound(_NOT_FOUND)
        self._check_ip_allowlist(request, account)
        self._check_sso_session(request, account)
        required = self.requirement_for(request)
        if required != MEMBERS and required not in permissions:
            raise PermissionDenied(f"Missing the permission {required!r} in this account.")
        self.account, self.permissions = account, permissions
        request.account = account
