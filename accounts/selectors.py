"""Reads about principals: their account role and their effective access to a workspace."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import AccountMembership, ServiceAccount, User, WorkspaceRoleGrant
from accounts.permissions import (
    ACCOUNT_ROLE_PERMISSIONS,
    WORKSPACE_OWNING_ACCOUNT_ROLES,
    WorkspaceRole,
    workspace_role_scopes,
)


@dataclass(frozen=True)
class WorkspaceAccess:
    roles: frozenset[str]
    scopes: frozenset[str]
    account_role: str | None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def account_role_of(principal, account) -> str | None:
    """The principal's role in ``account``, or None when it is not part of the account."""
    if isinstance(principal, ServiceAccount):
        return principal.account_role if principal.account_id == account.pk else None
    if isinstance(principal, User):
        if not principal.is_active:
            return None
        return (
            AccountMembership.objects.filter(account_id=account.pk, user_id=principal.pk)
            .values_list("role", flat=True)
            .first()
        )
    return None


def account_permissions_of(principal, account) -> frozenset[str]:
    role = account_role_of(principal, account)
    return ACCOUNT_ROLE_PERMISSIONS[role] if role else frozenset()


def workspace_access(principal, workspace) -> WorkspaceAccess | None:
    """What ``principal`` may do in ``workspace``: the union of all its grants, with account Owners
    and Admins acting as workspace Owner. None means no access at all (callers answer 404)."""
    account_role = account_role_of(principal, workspace.account)
    if account_role is None:
        return None
    if account_role in WORKSPACE_OWNING_ACCOUNT_ROLES:
        roles = frozenset({WorkspaceRole.OWNER.value})
    else:
        grants = WorkspaceRoleGrant.objects.for_workspace(workspace.pk)
        if isinstance(principal, ServiceAccount):
            grants = grants.filter(service_account_id=principal.pk)
        else:
            grants = grants.filter(user_id=principal.pk)
        roles = frozenset(grants.values_list("role", flat=True))
        if not roles:
            return None
    return WorkspaceAccess(roles=roles, scopes=workspace_role_scopes(roles), account_role=account_role)


def workspaces_of(principal) -> list[tuple[object, WorkspaceAccess]]:
    """Every workspace ``principal`` can reach, with its access, ordered by account and name."""
    from tenants.models import Workspace

    if isinstance(principal, ServiceAccount):
        account_ids = [principal.account_id]
    else:
        account_ids = list(
            AccountMembership.objects.filter(user=principal).values_list("account_id", flat=True)
        )
    result = []
    for workspace in Workspace.objects.filter(account_id__in=account_ids).select_related("account"):
        access = workspace_access(principal, workspace)
        if access is not None:
            result.append((workspace, access))
    return result
