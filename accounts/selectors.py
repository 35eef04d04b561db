"""Reads about principals (their account role and their effective access to a workspace) and the
account's people, service accounts, teams, roles, invitations and workspaces, as the account API
and the console read them. Every read here is scoped to the account (or workspace) it is given."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.models import (
    AccountMembership,
    CustomRole,
    Invitation,
    ScimUser,
    ServiceAccount,
    Team,
    TeamMember,
    User,
    WorkspaceDefaultRole,
    WorkspaceRoleGrant,
)
from accounts.permissions import (
    ACCOUNT_ROLE_PERMISSIONS,
    WORKSPACE_OWNING_ACCOUNT_ROLES,
    AccountRole,
    WorkspaceRole,
    expand_scopes,
)
from accounts.roles import ResolvedRole, role_of
from tenants.models import Account, Workspace


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
    grants = WorkspaceRoleGrant.objects.for_workspace(workspace.pk).select_related("custom_role", "team")
    if isinstance(principal, ServiceAccount):
        direct, member = Q(service_account_id=principal.pk), Q(service_account_id=principal.pk)
    else:
        direct, member = Q(user_id=principal.pk), Q(user_id=principal.pk)
    teams = TeamMember.objects.filter(member, team__account_id=workspace.account_id).values("team_id")
    return grants.filter(direct | Q(team_id__in=teams))


def _sources_of(principal, account_role: str, grants, default) -> list[AccessSource]:
    """The sources of access of a principal of ``account_role`` in one workspace, from its grants
    there (direct and through its teams, ``custom_role`` and ``team`` loaded) and the workspace's
    default role (``None``: none; it counts for people only)."""
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
    for grant in grants:
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
    if isinstance(principal, User) and default is not None:
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
    return sources


def _access_of(account_role: str | None, sources: list[AccessSource]) -> WorkspaceAccess | None:
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


def workspace_access_sources(principal, workspace) -> tuple[str | None, list[AccessSource]]:
    """The principal's account role and every source of its access to ``workspace``: its account
    role (Owner and Admin act as workspace Owner), direct grants, its teams' grants, and the
    workspace's default role (for people who are members of the account)."""
    account_role = account_role_of(principal, workspace.account)
    if account_role is None:
        return None, []
    grants = list(_principal_grants(principal, workspace))
    default = (
        WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()
        if isinstance(principal, User)
        else None
    )
    return account_role, _sources_of(principal, account_role, grants, default)


def workspace_access(principal, workspace) -> WorkspaceAccess | None:
    """What ``principal`` may do in ``workspace``: the union of every source of access (see
    ``workspace_access_sources``). None means no access at all (callers answer 404)."""
    account_role, sources = workspace_access_sources(principal, workspace)
    return _access_of(account_role, sources)


def workspaces_of(principal, *, account=None) -> list[tuple[object, WorkspaceAccess]]:
    """Every workspace ``principal`` can reach (in ``account`` only, when given), with its access
    (what ``workspace_access`` answers for each), ordered by account and name: in at most four
    queries whatever the number of workspaces, accounts, grants and teams."""
    if isinstance(principal, ServiceAccount):
        roles = {principal.account_id: principal.account_role}
    elif isinstance(principal, User) and principal.is_active:
        roles = dict(AccountMembership.objects.filter(user=principal).values_list("account_id", "role"))
    else:
        roles = {}
    if account is not None:
        roles = {pk: role for pk, role in roles.items() if pk == account.pk}
    if not roles:
        return []
    workspaces = list(Workspace.objects.filter(account_id__in=list(roles)).select_related("account"))
    if not workspaces:
        return []
    ids = [workspace.pk for workspace in workspaces]
    lookup = (
        Q(service_account_id=principal.pk)
        if isinstance(principal, ServiceAccount)
        else Q(user_id=principal.pk)
    )
    teams = TeamMember.objects.filter(lookup, team__account_id__in=list(roles)).values("team_id")
    grants: dict[uuid.UUID, list[WorkspaceRoleGrant]] = {}
    # Across the principal's workspaces at once: each row is filtered to those ids and this principal.
    for grant in (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(lookup | Q(team_id__in=teams), workspace_id__in=ids)
        .select_related("custom_role", "team")
    ):
        grants.setdefault(grant.workspace_id, []).append(grant)
    defaults = (
        {
            row.workspace_id: row
            for row in WorkspaceDefaultRole.objects.filter(workspace_id__in=ids).select_related("custom_role")
        }
        if isinstance(principal, User)
        else {}
    )
    result = []
    for workspace in workspaces:
        role = roles[workspace.account_id]
        access = _access_of(
            role, _sources_of(principal, role, grants.get(workspace.pk, ()), defaults.get(workspace.pk))
        )
        if access is not None:
            result.append((workspace, access))
    return result


# --- the account's people, service accounts and teams --------------------------------------------


def membership_list(*, account, emails: list | None = None) -> QuerySet[AccountMembership]:
    """The account's memberships, oldest first, each annotated ``scim_managed`` (one query); only
    those whose email is one of ``emails`` (any case) when given."""
    memberships = with_scim_managed(
        AccountMembership.objects.filter(account=account).select_related("user").order_by("created")
    )
    if emails is not None:
        query = Q(pk__in=[])
        for email in emails:
            query |= Q(user__email__iexact=str(email))
        memberships = memberships.filter(query)
    return memberships


def membership_list_with_sign_in(*, account, search: str = "") -> QuerySet[AccountMembership]:
    """``membership_list`` with how each person signs in, for the console (one query):
    ``scim_managed`` and ``sso_linked`` (an identity from single sign-on is linked to the user);
    a usable password is read off the user row. ``search``: only people whose email or name
    contains it (any case)."""
    linked = UserSocialAuth.objects.filter(user=OuterRef("user"))
    memberships = membership_list(account=account).annotate(sso_linked=Exists(linked))
    if search:
        memberships = memberships.filter(
            Q(user__email__icontains=search)
            | Q(user__first_name__icontains=search)
            | Q(user__last_name__icontains=search)
        )
    return memberships.order_by("created", "pk")


def account_memberships_of(user) -> QuerySet[AccountMembership]:
    """The accounts a person belongs to, with their role in each, by account name (one query)."""
    return AccountMembership.objects.filter(user=user).select_related("account").order_by("account__name")


def invitation_pending_list(*, account) -> QuerySet[Invitation]:
    """The account's pending invitations that have not expired, newest first (each holds a seat)."""
    return Invitation.objects.filter(
        account=account, status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
    ).order_by("-created")


def invitation_token_hash(token: str) -> str:
    """How an invitation's token is stored (its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_for_link(*, invitation_id, token: str) -> Invitation | None:
    """The pending, unexpired invitation the emailed link names, when ``token`` is its token; else
    None (the link's page then says nothing about the invitation or its account)."""
    try:
        invitation_id = uuid.UUID(str(invitation_id))
    except ValueError:
        return None
    invitation = (
        Invitation.objects.filter(
            pk=invitation_id, status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
        )
        .select_related("account")
        .first()
    )
    if invitation is None or not secrets.compare_digest(
        invitation.token_hash, invitation_token_hash(token or "")
    ):
        return None
    return invitation


def membership_get(*, account, membership_id) -> AccountMembership | None:
    return (
        AccountMembership.objects.filter(account=account, pk=membership_id)
        .select_related("user", "account")
        .first()
    )


def with_scim_managed(memberships: QuerySet[AccountMembership]) -> QuerySet[AccountMembership]:
    """Memberships annotated with whether the account's IdP provisions the person (one query)."""
    provisioned = ScimUser.objects.filter(account=OuterRef("account"), user=OuterRef("user")).exclude(
        active=False
    )
    return memberships.annotate(scim_managed=Exists(provisioned))


def membership_scim_managed(membership: AccountMembership) -> bool:
    """Does the account's identity provider provision this member over SCIM?"""
    if hasattr(membership, "scim_managed"):
        return bool(membership.scim_managed)
    return (
        membership.user.scim_identities.filter(account_id=membership.account_id)
        .exclude(active=False)
        .exists()
    )


def account_user_get(*, account, user_id) -> User | None:
    """A member of the account."""
    return User.objects.filter(pk=user_id, memberships__account=account).first()


def service_account_get(*, account, service_account_id) -> ServiceAccount | None:
    return (
        ServiceAccount.objects.filter(account=account, pk=service_account_id)
        .select_related("account")
        .first()
    )


def service_account_list(*, account, names: list | None = None, ids: list | None = None, search: str = ""):
    """The account's service accounts by name (then id, so pages of them are stable); only those
    named, with the ids given, or whose name contains ``search`` (any case)."""
    service_accounts = ServiceAccount.objects.filter(account=account).order_by("name", "pk")
    if search:
        service_accounts = service_accounts.filter(name__icontains=search)
    if names is not None:
        service_accounts = service_accounts.filter(name__in=[str(name) for name in names])
    if ids is not None:
        service_accounts = service_accounts.filter(pk__in=ids)
    return service_accounts


def account_actor_get(*, account, actor_id) -> User | ServiceAccount | None:
    """A member or a service account of the account."""
    return account_user_get(account=account, user_id=actor_id) or (
        ServiceAccount.objects.filter(pk=actor_id, account=account).first()
    )


def team_get(*, account, team_id) -> Team | None:
    return Team.objects.filter(account=account, pk=team_id).select_related("account").first()


def team_list(*, account, names: list | None = None, ids: list | None = None):
    teams = Team.objects.filter(account=account).order_by("name")
    if names is not None:
        teams = teams.filter(name__in=[str(name) for name in names])
    if ids is not None:
        teams = teams.filter(pk__in=ids)
    return teams


def team_member_list(team: Team):
    return team.members.select_related("user", "service_account")


def team_member_get(*, team: Team, principal_id) -> TeamMember | None:
    """The team's member who is the user or the service account with this id."""
    return (
        TeamMember.objects.filter(team=team)
        .filter(Q(user_id=principal_id) | Q(service_account_id=principal_id))
        .first()
    )


def team_workspace_grants(team: Team):
    """The team's grants across its account's workspaces (an account-level read)."""
    return (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(team=team, workspace__account_id=team.account_id)
        .select_related("workspace", "custom_role")
    )


def account_principal_get(*, account, kind: str, principal_id) -> User | ServiceAccount | Team | None:
    """A member ("user"), service account ("bot") or team ("team") of the account."""
    if kind == "user":
        return account_user_get(account=account, user_id=principal_id)
    if kind == "bot":
        return ServiceAccount.objects.filter(pk=principal_id, account=account).first()
    return Team.objects.filter(pk=principal_id, account=account).first()


# --- roles, invitations and workspaces ---------------------------------------------------------------


def custom_role_list(*, account):
    return CustomRole.objects.filter(account=account)


def custom_role_get(*, account, role_id) -> CustomRole | None:
    return CustomRole.objects.filter(account=account, pk=role_id).first()


def custom_role_grants(*, role) -> QuerySet[WorkspaceRoleGrant]:
    """Where a custom role is granted: its grants across its account's workspaces (an account-level
    read), with the workspace and the person, service account or team each names, by workspace."""
    return (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(custom_role=role, workspace__account_id=role.account_id)
        .select_related("workspace", "user", "service_account", "team")
        .order_by("workspace__name", "created")
    )


def custom_role_default_for(*, role) -> list[Workspace]:
    """The workspaces of the role's account whose default role it is, by name."""
    return list(
        Workspace.objects.filter(account_id=role.account_id, default_role__custom_role=role).order_by("name")
    )


def invitation_list(*, account):
    return Invitation.objects.filter(account=account).order_by("-created")


def invitation_get(*, account, invitation_id) -> Invitation | None:
    return Invitation.objects.filter(account=account, pk=invitation_id).first()


def account_workspace_get(*, account: Account, workspace_id) -> Workspace | None:
    """The account's workspace with this id, its ``account`` the one given (no second read of it)."""
    workspace = Workspace.objects.filter(account=account, pk=workspace_id).first()
    if workspace is not None:
        workspace.account = account
    return workspace


def workspace_default_role_get(workspace) -> WorkspaceDefaultRole | None:
    return WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()


_GRANT_FIELD = {"user": "user", "bot": "service_account", "team": "team"}


def workspace_grant_list(*, workspace, kind: str):
    """The workspace's grants to users, service accounts ("bot") or teams, oldest first."""
    grants = WorkspaceRoleGrant.objects.for_workspace(workspace.pk).select_related(
        "user", "service_account", "team", "custom_role"
    )
    return grants.filter(**{f"{_GRANT_FIELD[kind]}__isnull": False}).order_by("created")


def workspace_grant_get(*, workspace, kind: str, grant_id, or_team_id: bool = False):
    """One of the workspace's grants of this kind, by its id (or, for teams, by the team's id)."""
    match = Q(pk=grant_id) | Q(team_id=grant_id) if or_team_id else Q(pk=grant_id)
    return workspace_grant_list(workspace=workspace, kind=kind).filter(match).first()


# --- lists for the console (a fixed number of queries, whatever the number of rows) -------------


def team_list_with_counts(*, account) -> QuerySet[Team]:
    """The account's teams by name, each annotated ``member_count`` and ``grant_count`` (one query)."""
    members = TeamMember.objects.filter(team=OuterRef("pk")).values("team").annotate(n=Count("pk"))
    grants = (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(team=OuterRef("pk"))
        .values("team")
        .annotate(n=Count("pk"))
    )
    return team_list(account=account).annotate(
        member_count=Coalesce(Subquery(members.values("n")), 0),
        grant_count=Coalesce(Subquery(grants.values("n")), 0),
    )


def account_principals(*, account) -> tuple[list[tuple[uuid.UUID, str]], list[tuple[uuid.UUID, str]]]:
    """The account's people as ``(id, email)`` by email and its service accounts as ``(id, name)``
    by name: two queries. For choosing one of them (an account may hold thousands): plain rows,
    no model instance per person."""
    users = list(
        User.objects.filter(memberships__account=account).order_by("email").values_list("id", "email")
    )
    return users, list(service_account_list(account=account).values_list("id", "name"))


def account_team_names(*, account) -> list[tuple[uuid.UUID, str]]:
    """The account's teams as ``(id, name)`` by name (one query, plain rows): for choosing one."""
    return list(team_list(account=account).values_list("id", "name"))


def _reachable_workspaces(principal, *, account, role: str) -> QuerySet[Workspace]:
    """The workspaces of ``account`` that ``principal``, of account role ``role``, reaches: an
    account Owner or Admin every one; anyone else those with a default role or a grant to them,
    directly or through a team (what ``workspace_access`` would find, in one query)."""
    workspaces = Workspace.objects.filter(account=account)
    if role not in WORKSPACE_OWNING_ACCOUNT_ROLES:
        lookup = (
            Q(service_account_id=principal.pk)
            if isinstance(principal, ServiceAccount)
            else Q(user_id=principal.pk)
        )
        teams = TeamMember.objects.filter(lookup, team__account_id=account.pk).values("team_id")
        granted = (
            WorkspaceRoleGrant.objects.unscoped()
            .filter(lookup | Q(team_id__in=teams), workspace__account_id=account.pk)
            .values("workspace_id")
        )
        reach = Q(pk__in=granted)
        if isinstance(principal, User):
            reach |= Q(default_role__isnull=False)
        workspaces = workspaces.filter(reach)
    return workspaces


def workspace_list_for(principal, *, account) -> list[Workspace]:
    """The workspaces of ``account`` that ``principal`` reaches (``_reachable_workspaces``), by
    name, each with its default role (``default_role_or_none``) and ``grant_count``, in a fixed
    number of queries."""
    role = account_role_of(principal, account)
    if role is None:
        return []
    grants = (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(workspace=OuterRef("pk"))
        .values("workspace")
        .annotate(n=Count("pk"))
    )
    workspaces = (
        _reachable_workspaces(principal, account=account, role=role)
        .annotate(grant_count=Coalesce(Subquery(grants.values("n")), 0))
        .order_by("name")
    )
    result = list(workspaces)
    defaults = {
        row.workspace_id: row
        for row in WorkspaceDefaultRole.objects.filter(workspace__in=[w.pk for w in result]).select_related(
            "custom_role"
        )
    }
    for workspace in result:
        workspace.default_role_or_none = defaults.get(workspace.pk)
    return result


def workspace_names_for(principal, *, account, role: str) -> list[tuple[uuid.UUID, str]]:
    """``(id, name)`` of the workspaces of ``account`` that ``principal`` reaches, its account role
    ``role`` already known (the console's workspace switcher): one query, by name."""
    return list(
        _reachable_workspaces(principal, account=account, role=role)
        .order_by("name")
        .values_list("pk", "name")
    )


def account_workspace_names(*, account) -> list[tuple[uuid.UUID, str]]:
    """``(id, name)`` of every workspace of ``account``, by name (one query)."""
    return list(Workspace.objects.filter(account=account).order_by("name").values_list("pk", "name"))


def workspace_grants_all(workspace) -> QuerySet[WorkspaceRoleGrant]:
    """Every grant of ``workspace`` (people, service accounts and teams) with what names them."""
    return (
        WorkspaceRoleGrant.objects.for_workspace(workspace.pk)
        .select_related("user", "service_account", "team", "custom_role")
        .order_by("created")
    )


def account_admins(*, account) -> list[tuple[str, str]]:
    """The account's Owners and Admins (who act as Owner in every workspace) as ``(email, account
    role)``, by email (one query, plain rows: a big account has a hundred of them)."""
    return list(
        AccountMembership.objects.filter(account=account, role__in=WORKSPACE_OWNING_ACCOUNT_ROLES)
        .order_by("user__email")
        .values_list("user__email", "role")
    )


def account_user_by_email(*, account, email: str) -> User | None:
    """The member of the account with this email (any case)."""
    return User.objects.filter(memberships__account=account, email__iexact=email).first()
