"""The view bases every tenant API stands on.

``WorkspaceApiView`` serves ``/api/accounts/<account>/workspaces/<workspace>/…``: before the handler
runs it authenticates the principal, resolves the account and workspace from the URL (by id or by
handle), checks the principal's access and the scope the method needs, and enters the workspace
scope so ``WorkspaceScopedModel.objects`` answers for that workspace only. A principal without
access gets the same 404 as for a workspace that does not exist.

What is checked, and in what order, is the gate's (``access.gate``): these bases only turn its
decision into DRF's answers (404, 403 with the gate's detail) and set the scope, in the process
(``tenants.scoping``) and on the database connection (row-level security, ``tenants.rls``).

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

from access import limits
from access.gate import MEMBERS, Caller, Decision, Outcome, Surface, authorize_account, authorize_workspace
from audit.context import client_ip
from tenants.models import Account, Workspace
from tenants.rls import database_workspace_set
from tenants.scoping import enter_workspace_scope, leave_workspace_scope

__all__ = ["MEMBERS", "AccountApiView", "WorkspaceApiView", "caller_of"]


def caller_of(request, surface: Surface = Surface.API) -> Caller:
    """The gate's view of an authenticated request (DRF's or Django's): a key, or a browser
    session."""
    api_key = getattr(request, "auth", None)  # DRF's; a plain Django request has only the session
    return Caller(
        principal=request.user,
        ip=client_ip(request),
        surface=surface,
        api_key=api_key,
        session_request=getattr(request, "_request", request) if api_key is None else None,
    )


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

    @classmethod
    def declared_requirement(cls, method: str) -> str | None:
        declared = getattr(cls, cls._declaration, None) or {}
        return declared.get(method.upper())

    def need_of(self, request) -> str | None:
        return self.declared_requirement("GET" if request.method == "HEAD" else request.method)

    @staticmethod
    def enforce(decision: Decision, need: str | None) -> None:
        """The gate's refusal as DRF's answer. A method the view does not declare is not served
        (the meta-test keeps declarations complete), once the caller has come through the door."""
        if decision.allowed and need is None:
            raise PermissionDenied("This operation is not permitted.")
        if decision.outcome is Outcome.NOT_FOUND:
            raise NotFound(decision.detail)
        if not decision.allowed:
            raise PermissionDenied(decision.detail)


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
                leave_workspace_scope(self._scope_token)

    def initial(self, request, *args, **kwargs):
        # Authentication and the authenticated check run first: an anonymous caller learns nothing.
        super().initial(request, *args, **kwargs)
        need = self.need_of(request)
        decision = authorize_workspace(
            caller_of(request),
            self._account_ref,
            self._workspace_ref,
            need or MEMBERS,
            allowlist_exempt=self.ip_allowlist_exempt,
        )
        self.enforce(decision, need)
        # The account's rate limit (its plan's), once the account is known and the caller may act.
        bucket, amount = self.rate_charge(request)
        limits.charge(decision.account, bucket, amount)
        self.account, self.workspace, self.access = decision.account, decision.workspace, decision.access
        request.workspace = decision.workspace
        self._scope_token = enter_workspace_scope(decision.workspace.pk)
        # Row-level security, the last belt: the connection sees this workspace's rows only, until
        # the request finishes (``tenants.rls``).
        database_workspace_set(decision.workspace.pk)

    def rate_charge(self, request) -> tuple[limits.Bucket, int]:
        """What this request costs against the account's rate limits: one API request; the views
        that write logs or events charge each item to the logs + events bucket instead."""
        return limits.Bucket.API, 1

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
        need = self.need_of(request)
        decision = authorize_account(
            caller_of(request), self._account_ref, need or MEMBERS, allowlist_exempt=self.ip_allowlist_exempt
        )
        self.enforce(decision, need)
        self.account, self.permissions = decision.account, decision.permissions
        request.account = decision.account
