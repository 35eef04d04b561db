"""Reads about principals: their account role and their effective access to a workspace."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db.models import Q

from accounts.models import AccountMembership, ServiceAccount, User, WorkspaceRoleGrant
from accounts.permissions import (
    ACCOUNT_ROLE_PERMISSIONS,
    WORKSPACE_OWNING_ACCOUNT_ROLES,
    AccountRole,
    WorkspaceRole,
    expand_scopes,
)


@dataclass(frozen=True)
class AccessSource:
    """One reason a principal holds scopes in a workspace."""

    via: str  # "account_role" | "direct" | "team" | "default_role"
    role_key: str  # what WorkspaceAccess.roles lists: a built-in key, or the custom role's name
    role_id: str
    role_name: str
    scopes: frozenset[str]
    team_id: str | None = None
    team_name: str | None = None

    def as_wire(self) -> dict:
        return {
            "via": self.via,
            "role_id": self.role_id,
            "role_name": self.role_name,
            "team_id": self.team_id,
            "team_name": self.team_name,
        }


@dataclass(frozen=True)
class WorkspaceAccess:
    roles: frozenset[str]
    scopes: frozenset[str]
    account_role: str | None
    sources: tuple[AccessSource, ...] = ()

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def restricted_to(self, scopes) -> WorkspaceAccess:
        """This access narrowed to ``scopes`` (and what they include): a scoped-down key."""
        return replace(self, scopes=self.scopes & expand_scopes(scopes))


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


def _principal_grants(principal, workspace):
    from accounts.models import TeamMember

    grants = WorkspaceRoleGrant.objects.for_workspace(workspace.pk).select_related("custom_role", "team")
    if isinstance(principal, ServiceAccount):
        direct, member = Q(service_account_id=principal.pk), Q(service_account_id=principal.pk)
    else:
        direct, member = Q(user_id=principal.pk), Q(user_id=principal.pk)
    teams = TeamMember.objects.filter(member, team__account_id=workspace.account_id).values("team_id")
    return grants.filter(direct | Q(team_id__in=teams))


def workspace_access_sources(principal, workspace) -> tuple[str | None, list[AccessSource]]:
    """The principal's account role and every source of its access to ``workspace``: its account
    role (Owner and Admin act as workspace Owner), direct grants, its teams' grants, and the
    workspace's default role (for people who are members of the account)."""
    from accounts.models import WorkspaceDefaultRole
    from accounts.roles import ResolvedRole, role_of

    account_role = account_role_of(principal, workspace.account)
    if account_role is None:
        return None, []
    sources: list[AccessSource] = []
    if account_role in WORKSPACE_OWNING_ACCOUNT_ROLES:
        owner = ResolvedRole(builtin=WorkspaceRole.OWNER.value)
        sources.append(
            AccessSource(
                via="account_role",
                role_key=owner.key,
                role_id=str(owner.id),
                role_name=f"{owner.name} (as account {AccountRole(account_role).label})",
                scopes=owner.scopes,
            )
        )
    for grant in _principal_grants(principal, workspace):
        role = role_of(grant)
        sources.append(
            AccessSource(
                via="team" if grant.team_id else "direct",
                role_key=role.key,
                role_id=str(role.id),
                role_name=role.name,
                scopes=role.scopes,
                team_id=str(grant.team_id) if grant.team_id else None,
                team_name=grant.team.name if grant.team_id else None,
            )
        )
    if isinstance(principal, User):
        default = (
            WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()
        )
        if default is not None:
            role = role_of(default)
            sources.append(
                AccessSource(
                    via="default_role",
                    role_key=role.key,
                    role_id=str(role.id),
                    role_name=role.name,
                    scopes=role.scopes,
                )
            )
    return account_role, sources


def workspace_access(principal, workspace) -> WorkspaceAccess | None:
    """What ``principal`` may do in ``workspace``: the union of every source of access (see
    ``workspace_access_sources``). None means no access at all (callers answer 404)."""
    account_role, sources = workspace_access_sources(principal, workspace)
    if not sources:
        return None
    scopes: frozenset[str] = frozenset()
    roles: set[str] = set()
    for source in sources:
        scopes |= source.scopes
        roles.add(source.role_key)
    return WorkspaceAccess(
        roles=frozenset(roles), scopes=scopes, account_role=account_role, sources=tuple(sources)
    )


def workspaces_of(principal, *, account=None) -> list[tuple[object, WorkspaceAccess]]:
    """Every workspace ``principal`` can reach (in ``account`` only, when given), with its access,
    ordered by account and name."""
    from tenants.models import Workspace

    if isinstance(principal, ServiceAccount):
        account_ids = [principal.account_id]
    else:
        account_ids = list(
            AccountMembership.objects.filter(user=principal).values_list("account_id", flat=True)
        )
    if account is not None:
        account_ids = [pk for pk in account_ids if pk == account.pk]
    result = []
    for workspace in Workspace.objects.filter(account_id__in=account_ids).select_related("account"):
        access = workspace_access(principal, workspace)
        if access is not None:
            result.append((workspace, access))
    return result
