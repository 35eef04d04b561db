"""The account API, shaped like Prefect Cloud's (what its Terraform provider sends and reads):
``/api/accounts/<account>/`` account roles, workspace roles, memberships, bots (service accounts),
teams, invitations, workspaces and settings; ``/api/users/<id>/api_keys``; the permission and
scope catalogues; and under each workspace ``user_access``, ``bot_access``, ``team_access`` and
``access/explain``.

Every view declares the account permission (``required_permissions``) or workspace scope
(``required_scopes``) each method needs. Anything outside the caller's account answers 404; a bad
value answers 422 with ``{"detail": …}``; nothing is half-written (each write is one service call
in one transaction).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from access.views import MEMBERS, AccountApiView, WorkspaceApiView
from accounts import rbac
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.models import (
    AccountMembership,
    CustomRole,
    Invitation,
    ServiceAccount,
    Team,
    TeamMember,
    User,
    WorkspaceRoleGrant,
)
from accounts.permissions import (
    ACCOUNT_PERMISSIONS,
    SCOPES_BY_NAME,
    WORKSPACE_SCOPES,
    AccountRole,
    WorkspaceRole,
    builtin_account_role_id,
    expand_scopes,
)
from accounts.roles import (
    account_role_resolve,
    account_role_wire,
    builtin_workspace_role_wire,
    custom_role_wire,
    role_of,
    workspace_role_resolve,
)
from accounts.selectors import workspace_access, workspace_access_sources, workspaces_of
from accounts.services import (
    membership_change_role,
    membership_remove,
    service_account_create,
    service_account_delete,
    workspace_access_grant,
    workspace_access_revoke,
)
from core.errors import AppError, Forbidden, InvalidInput, NotFound, Unprocessable
from tenants.models import Workspace

DEFAULT_LIMIT = 200


# --- request helpers ----------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise Unprocessable(f"{what} must be a UUID.", code="invalid_id") from None


def _path_id(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise NotFound(f"{what} not found.") from None


def _datetime(value, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is not None:
            if timezone.is_naive(parsed):
                parsed = timezone.make_aware(parsed, UTC)
            # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise Unprocessable(f"{what} must be an ISO 8601 datetime.", code="invalid_datetime")
    return parsed


def _any(body: dict, collection: str, field: str) -> list | None:
    """``body[collection][field]["any_"]`` (Prefect's filter grammar), or None when absent."""
    section = body.get(collection) or {}
    if not isinstance(section, dict):
        raise Unprocessable(f"{collection} must be an object.", code="invalid_filter")
    criterion = section.get(field) or {}
    if not isinstance(criterion, dict):
        raise Unprocessable(f"{collection}.{field} must be an object.", code="invalid_filter")
    values = criterion.get("any_")
    if values is not None and not isinstance(values, list):
        raise Unprocessable(f"{collection}.{field}.any_ must be a list.", code="invalid_filter")
    return values


def _page(body: dict, queryset):
    limit, offset = body.get("limit", DEFAULT_LIMIT), body.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
        raise Unprocessable("limit and offset must be non-negative integers.", code="invalid_paging")
    return queryset[offset : offset + limit]


class _ApiMixin:
    """Bodies as JSON objects, and every client error in ``{"detail": …}`` with Prefect Cloud's
    status codes (422 for a value that cannot be used)."""

    def body(self) -> dict:
        data = self.request.data
        if data in (None, b"", ""):
            return {}
        if not isinstance(data, dict):
            raise Unprocessable("The request body must be a JSON object.", code="invalid_body")
        return data

    def handle_exception(self, exc):
        if isinstance(exc, drf_exceptions.ParseError):
            return Response({"detail": f"Invalid request received: {exc.detail}"}, status=422)
        if isinstance(exc, InvalidInput):
            return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=422)
        if isinstance(exc, ValueError) and not isinstance(exc, AppError):
            # Enum conversions of request values (an unknown role key) land here.
            return Response({"detail": str(exc)}, status=422)
        return super().handle_exception(exc)


class AccountApi(_ApiMixin, AccountApiView):
    def _account_role(
        self, body: dict, key: str = "account_role_id", default=AccountRole.MEMBER
    ) -> AccountRole:
        value = body.get(key)
        if value is None:
            return default
        role = account_role_resolve(_uuid(value, key))
        if role is None:
            raise NotFound("Account role not found.")
        return role

    def _workspace_role(self, value, key: str = "workspace_role_id"):
        role = workspace_role_resolve(_uuid(value, key), account=self.account)
        if role is None:
            raise NotFound("Workspace role not found.")
        return role

    def _workspace(self, workspace_id) -> Workspace:
        workspace = Workspace.objects.filter(
            account=self.account, pk=_path_id(workspace_id, "Workspace")
        ).first()
        if workspace is None:
            raise NotFound("Workspace not found.")
        return workspace


# --- wire shapes ------------------------------------------------------------------------------------


def _handle(user: User) -> str:
    return user.email.split("@", 1)[0]


def membership_wire(membership: AccountMembership) -> dict:
    user = membership.user
    role = AccountRole(membership.role)
    return {
        "id": str(membership.id),
        "created": _iso(membership.created),
        "updated": _iso(membership.updated),
        "actor_id": str(user.id),
        "account_id": str(membership.account_id),
        "user_id": str(user.id),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "handle": _handle(user),
        "email": user.email,
        "account_role_id": str(builtin_account_role_id(role.value)),
        "account_role_name": role.label,
        "last_login": _iso(user.last_login),
        "active": user.is_active,
        # Provisioned by the account's identity provider over SCIM (changed there, not here).
        "managed_by": "scim" if _scim_managed(membership) else None,
    }


def with_scim_managed(memberships):
    """Memberships annotated with whether the account's IdP provisions the person (one query)."""
    from accounts.models import ScimUser

    provisioned = ScimUser.objects.filter(account=OuterRef("account"), user=OuterRef("user")).exclude(
        active=False
    )
    return memberships.annotate(scim_managed=Exists(provisioned))


def _scim_managed(membership: AccountMembership) -> bool:
    if hasattr(membership, "scim_managed"):
        return bool(membership.scim_managed)
    return (
        membership.user.scim_identities.filter(account_id=membership.account_id)
        .exclude(active=False)
        .exists()
    )


def _key_wire(key: ApiKey | None, plaintext: str | None = None) -> dict | None:
    if key is None:
        return None
    data = {
        "id": str(key.id),
        "created": _iso(key.created),
        "name": key.name,
        "expiration": _iso(key.expires_at),
        "last_used_at": _iso(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "scopes": key.scopes,
    }
    if plaintext is not None:
        data["key"] = plaintext
    else:
        data["masked_key"] = key.display
    return data


def _active_keys(service_accounts) -> dict:
    """The newest usable key of each service account, in one query."""
    now = timezone.now()
    keys = (
        ApiKey.objects.filter(service_account__in=list(service_accounts), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("service_account_id", "-created")
    )
    newest: dict = {}
    for key in keys:
        newest.setdefault(key.service_account_id, key)
    return newest


_NOT_GIVEN = object()


def bot_wire(service_account: ServiceAccount, *, key=_NOT_GIVEN, plaintext: str | None = None) -> dict:
    """The bot with its key: the one given (a new key, with its plaintext), or else its newest
    usable key (masked)."""
    if key is _NOT_GIVEN:
        key = _active_keys([service_account]).get(service_account.id)
    role = AccountRole(service_account.account_role)
    return {
        "id": str(service_account.id),
        "created": _iso(service_account.created),
        "updated": _iso(service_account.updated),
        "actor_id": str(service_account.id),
        "account_id": str(service_account.account_id),
        "name": service_account.name,
        "account_role_id": str(builtin_account_role_id(role.value)),
        "account_role_name": role.label,
        "api_key": _key_wire(key, plaintext),
    }


def team_wire(team: Team) -> dict:
    memberships = []
    for member in team.members.select_related("user", "service_account"):
        if member.user_id:
            user = member.user
            memberships.append(
                {
                    "id": str(user.id),
                    "handle": _handle(user),
                    "name": user.full_name or user.email,
                    "email": user.email,
                    "type": "user",
                }
            )
        else:
            bot = member.service_account
            memberships.append(
                {"id": str(bot.id), "handle": bot.name, "name": bot.name, "email": None, "type": "bot"}
            )
    workspaces = []
    for grant in (
        WorkspaceRoleGrant.objects.unscoped()
        .filter(team=team, workspace__account_id=team.account_id)
        .select_related("workspace", "custom_role")
    ):
        role = role_of(grant)
        workspaces.append(
            {
                "workspace_id": str(grant.workspace_id),
                "workspace_handle": grant.workspace.handle,
                "workspace_role_id": str(role.id),
                "workspace_role_name": role.name,
            }
        )
    return {
        "id": str(team.id),
        "created": _iso(team.created),
        "updated": _iso(team.updated),
        "account_id": str(team.account_id),
        "name": team.name,
        "description": team.description,
        "memberships": memberships,
        "workspaces": workspaces,
        "managed_by": "scim" if team.scim_managed else None,
        "external_id": team.scim_external_id or None,
    }


def workspace_wire(workspace: Workspace) -> dict:
    from accounts.models import WorkspaceDefaultRole

    default = WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()
    return {
        "id": str(workspace.id),
        "created": _iso(workspace.created),
        "updated": _iso(workspace.updated),
        "account_id": str(workspace.account_id),
        "name": workspace.name,
        "description": workspace.description or "",
        "handle": workspace.handle,
        "default_workspace_role_id": str(role_of(default).id) if default else None,
        "is_public": False,
    }


def invitation_wire(invitation: Invitation, *, token: str | None = None) -> dict:
    status = invitation.status
    if status == Invitation.Status.PENDING and invitation.expires_at <= timezone.now():
        status = "EXPIRED"
    data = {
        "id": str(invitation.id),
        "created": _iso(invitation.created),
        "updated": _iso(invitation.updated),
        "email": invitation.email,
        "account_id": str(invitation.account_id),
        "account_role_id": str(builtin_account_role_id(invitation.account_role)),
        "workspace_grants": invitation.workspace_grants,
        "status": status,
        "expiration": _iso(invitation.expires_at),
    }
    if token is not None:
        data["token"] = token
        data["accept_path"] = f"/api/invitations/{invitation.id}/accept"
    return data


def grant_wire(grant: WorkspaceRoleGrant) -> dict:
    role = role_of(grant)
    data = {
        "id": str(grant.id),
        "created": _iso(grant.created),
        "updated": _iso(grant.updated),
        "workspace_id": str(grant.workspace_id),
        "workspace_role_id": str(role.id),
        "workspace_role_name": role.name,
    }
    if grant.user_id:
        user = grant.user
        data.update(
            actor_id=str(user.id),
            user_id=str(user.id),
            first_name=user.first_name,
            last_name=user.last_name,
            email=user.email,
            handle=_handle(user),
        )
    elif grant.service_account_id:
        data.update(
            actor_id=str(grant.service_account_id),
            bot_id=str(grant.service_account_id),
            bot_name=grant.service_account.name,
        )
    else:
        data.update(team_id=str(grant.team_id), team_name=grant.team.name)
    return data


# --- catalogues -------------------------------------------------------------------------------------


class AccountPermissionsApi(_ApiMixin, APIView):
    """``GET /api/accounts/permissions``: the account permission vocabulary."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(sorted(ACCOUNT_PERMISSIONS))


class WorkspaceScopesApi(_ApiMixin, APIView):
    """``GET /api/workspace_scopes``: every workspace scope with what it includes."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        result = []
        for scope in WORKSPACE_SCOPES:
            noun = scope.name.split("_", 1)[1]
            see = f"see_{noun}"
            result.append(
                {
                    "name": scope.name,
                    "title": scope.title,
                    "feature_group": noun,
                    "includes_scopes": sorted(expand_scopes([scope.name]) - {scope.name}),
                    "see_scope": see if see in SCOPES_BY_NAME and see != scope.name else None,
                }
            )
        return Response(result)


# --- account roles ----------------------------------------------------------------------------------


class AccountRolesFilterApi(AccountApi):
    required_permissions = {"POST": "read:account_role"}

    def post(self, request, **kwargs):
        body = self.body()
        names = _any(body, "account_roles", "name")
        roles = [role for role in AccountRole if names is None or role.label in names]
        return Response([account_role_wire(role) for role in roles])


class AccountRoleApi(AccountApi):
    required_permissions = {"GET": "read:account_role"}

    def get(self, request, role_id, **kwargs):
        role = account_role_resolve(role_id)
        if role is None:
            raise NotFound("Account role not found.")
        return Response(account_role_wire(role))


# --- workspace roles ---------------------------------------------------------------------------------


def _role_fields(body: dict, *, partial: bool) -> dict:
    fields: dict[str, Any] = {}
    if "name" in body or not partial:
        fields["name"] = body.get("name")
    if "description" in body:
        fields["description"] = body.get("description") or ""
    if "scopes" in body or "permissions" in body:
        fields["scopes"] = body.get("scopes", body.get("permissions"))
    if "inherited_role_id" in body:
        value = body.get("inherited_role_id")
        if value is None:
            fields["inherited_role"] = ""
        else:
            from accounts.roles import BUILTIN_WORKSPACE_ROLE_BY_ID

            inherited = BUILTIN_WORKSPACE_ROLE_BY_ID.get(_uuid(value, "inherited_role_id"))
            if inherited is None:
                raise Unprocessable(
                    "A custom role can inherit only a built-in role.", code="invalid_inherited_role"
                )
            fields["inherited_role"] = inherited.value
    return fields


class WorkspaceRolesApi(AccountApi):
    required_permissions = {"POST": "create:workspace_role"}

    def post(self, request, **kwargs):
        role = rbac.custom_role_create(
            account=self.account, actor=request.user, **_role_fields(self.body(), partial=False)
        )
        return Response(custom_role_wire(role), status=201)


class WorkspaceRolesFilterApi(AccountApi):
    required_permissions = {"POST": "read:workspace_role"}

    def post(self, request, **kwargs):
        body = self.body()
        names = _any(body, "workspace_roles", "name")
        ids = _any(body, "workspace_roles", "id")
        result = [builtin_workspace_role_wire(role) for role in WorkspaceRole]
        result += [custom_role_wire(role) for role in CustomRole.objects.filter(account=self.account)]
        if names is not None:
            result = [role for role in result if role["name"] in names]
        if ids is not None:
            wanted = {str(value) for value in ids}
            result = [role for role in result if role["id"] in wanted]
        return Response(_page(body, result))


class WorkspaceRoleApi(AccountApi):
    required_permissions = {
        "GET": "read:workspace_role",
        "PATCH": "update:workspace_role",
        "DELETE": "delete:workspace_role",
    }

    def _custom(self, role_id) -> CustomRole:
        role = CustomRole.objects.filter(account=self.account, pk=_path_id(role_id, "Workspace role")).first()
        if role is None:
            from accounts.roles import BUILTIN_WORKSPACE_ROLE_BY_ID

            if _path_id(role_id, "Workspace role") in BUILTIN_WORKSPACE_ROLE_BY_ID:
                raise Unprocessable("Built-in roles cannot be changed.", code="builtin_role")
            raise NotFound("Workspace role not found.")
        return role

    def get(self, request, role_id, **kwargs):
        resolved = workspace_role_resolve(role_id, account=self.account)
        if resolved is None:
            raise NotFound("Workspace role not found.")
        if resolved.custom is not None:
            return Response(custom_role_wire(resolved.custom))
        return Response(builtin_workspace_role_wire(WorkspaceRole(resolved.builtin)))

    def patch(self, request, role_id, **kwargs):
        role = self._custom(role_id)
        rbac.custom_role_update(role=role, actor=request.user, **_role_fields(self.body(), partial=True))
        return Response(status=204)

    def delete(self, request, role_id, **kwargs):
        rbac.custom_role_delete(role=self._custom(role_id), actor=request.user)
        return Response(status=204)


# --- memberships ------------------------------------------------------------------------------------


class MembershipsFilterApi(AccountApi):
    required_permissions = {"POST": "read:account_membership"}

    def post(self, request, **kwargs):
        body = self.body()
        memberships = with_scim_managed(
            AccountMembership.objects.filter(account=self.account).select_related("user").order_by("created")
        )
        emails = _any(body, "account_memberships", "email")
        if emails is not None:
            query = Q(pk__in=[])
            for email in emails:
                query |= Q(user__email__iexact=str(email))
            memberships = memberships.filter(query)
        if body.get("only_bots"):
            return Response([])
        return Response([membership_wire(m) for m in _page(body, memberships)])


class MembershipApi(AccountApi):
    required_permissions = {
        "GET": "read:account_membership",
        "PATCH": "update:account_membership",
        "DELETE": "delete:account_membership",
    }

    def _membership(self, membership_id) -> AccountMembership:
        membership = (
            AccountMembership.objects.filter(account=self.account, pk=_path_id(membership_id, "Membership"))
            .select_related("user", "account")
            .first()
        )
        if membership is None:
            raise NotFound("Membership not found.")
        return membership

    def get(self, request, membership_id, **kwargs):
        return Response(membership_wire(self._membership(membership_id)))

    def patch(self, request, membership_id, **kwargs):
        membership = self._membership(membership_id)
        body = self.body()
        if "account_role_id" not in body:
            raise Unprocessable("account_role_id is required.", code="missing_field")
        membership_change_role(membership=membership, role=self._account_role(body), actor=request.user)
        return Response(status=204)

    def delete(self, request, membership_id, **kwargs):
        membership_remove(membership=self._membership(membership_id), actor=request.user)
        return Response(status=204)


# --- bots (service accounts) ----------------------------------------------------------------------


class BotsApi(AccountApi):
    required_permissions = {"POST": "create:bot"}

    def post(self, request, **kwargs):
        body = self.body()
        role = self._account_role(body)
        expires_at = _datetime(body.get("api_key_expiration"), "api_key_expiration")
        from django.db import transaction

        with transaction.atomic():
            bot = service_account_create(
                account=self.account, name=body.get("name"), actor=request.user, account_role=role
            )
            key, plaintext = api_key_create(
                owner=bot, name=f"{bot.name} key", actor=request.user, expires_at=expires_at
            )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)


class BotsFilterApi(AccountApi):
    required_permissions = {"POST": "read:bot"}

    def post(self, request, **kwargs):
        body = self.body()
        bots = ServiceAccount.objects.filter(account=self.account).order_by("name")
        names = _any(body, "service_accounts", "name")
        ids = _any(body, "service_accounts", "id")
        if names is not None:
            bots = bots.filter(name__in=[str(name) for name in names])
        if ids is not None:
            bots = bots.filter(pk__in=[_uuid(value, "id") for value in ids])
        if isinstance(body.get("any_"), list):  # an older provider's top-level id filter
            bots = bots.filter(pk__in=[_uuid(value, "id") for value in body["any_"]])
        page = list(_page(body, bots))
        keys = _active_keys(page)
        return Response([bot_wire(bot, key=keys.get(bot.id)) for bot in page])


class _BotLookup:
    def _bot(self, bot_id) -> ServiceAccount:
        bot = (
            ServiceAccount.objects.filter(account=self.account, pk=_path_id(bot_id, "Bot"))
            .select_related("account")
            .first()
        )
        if bot is None:
            raise NotFound("Bot not found.")
        return bot


class BotApi(_BotLookup, AccountApi):
    required_permissions = {"GET": "read:bot", "PATCH": "update:bot", "DELETE": "delete:bot"}

    def get(self, request, bot_id, **kwargs):
        return Response(bot_wire(self._bot(bot_id)))

    def patch(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.body()
        role = self._account_role(body, default=None) if "account_role_id" in body else None
        rbac.service_account_update(
            service_account=bot, actor=request.user, name=body.get("name"), account_role=role
        )
        return Response(status=204)

    def delete(self, request, bot_id, **kwargs):
        service_account_delete(service_account=self._bot(bot_id), actor=request.user)
        return Response(status=204)


class BotRotateKeyApi(_BotLookup, AccountApi):
    required_permissions = {"POST": "update:bot"}

    def post(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.body()
        grace = body.get("old_key_expires_in_seconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise Unprocessable("old_key_expires_in_seconds must be an integer.", code="invalid_grace")
        key, plaintext = rbac.service_account_rotate_key(
            service_account=bot,
            actor=request.user,
            expires_at=_datetime(body.get("api_key_expiration"), "api_key_expiration"),
            old_key_expires_in_seconds=grace,
        )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)


# --- teams ----------------------------------------------------------------------------------------


class TeamsApi(AccountApi):
    required_permissions = {"POST": "create:team"}

    def post(self, request, **kwargs):
        body = self.body()
        team = rbac.team_create(
            account=self.account,
            name=body.get("name"),
            description=body.get("description") or "",
            actor=request.user,
        )
        return Response(team_wire(team), status=201)


class TeamsFilterApi(AccountApi):
    required_permissions = {"POST": "read:team"}

    def post(self, request, **kwargs):
        body = self.body()
        teams = Team.objects.filter(account=self.account).order_by("name")
        names = _any(body, "teams", "name")
        if names is not None:
            teams = teams.filter(name__in=[str(name) for name in names])
        ids = _any(body, "teams", "id")
        if ids is not None:
            teams = teams.filter(pk__in=[_uuid(value, "id") for value in ids])
        return Response([team_wire(team) for team in _page(body, teams)])


class _TeamLookup:
    def _team(self, team_id) -> Team:
        team = (
            Team.objects.filter(account=self.account, pk=_path_id(team_id, "Team"))
            .select_related("account")
            .first()
        )
        if team is None:
            raise NotFound("Team not found.")
        return team


class TeamApi(_TeamLookup, AccountApi):
    required_permissions = {
        "GET": "read:team",
        "PUT": "update:team",
        "PATCH": "update:team",
        "DELETE": "delete:team",
    }

    def get(self, request, team_id, **kwargs):
        return Response(team_wire(self._team(team_id)))

    def put(self, request, team_id, **kwargs):
        team = self._team(team_id)
        body = self.body()
        team = rbac.team_update(
            team=team, actor=request.user, name=body.get("name"), description=body.get("description")
        )
        return Response(team_wire(team))

    patch = put

    def delete(self, request, team_id, **kwargs):
        rbac.team_delete(team=self._team(team_id), actor=request.user)
        return Response(status=204)


def _member_principal(account, member_id, member_type: str):
    if member_type == "user":
        principal = User.objects.filter(pk=member_id, memberships__account=account).first()
    elif member_type in ("service_account", "bot"):
        principal = ServiceAccount.objects.filter(pk=member_id, account=account).first()
    else:
        raise Unprocessable("member_type must be 'user' or 'service_account'.", code="invalid_member_type")
    if principal is None:
        raise NotFound("No such member or service account in this account.")
    return principal


class TeamMembersApi(_TeamLookup, AccountApi):
    required_permissions = {"PUT": "update:team", "POST": "update:team"}

    def put(self, request, team_id, **kwargs):
        team = self._team(team_id)
        members = self.body().get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise Unprocessable("members must be a list of {member_id, member_type}.", code="invalid_members")
        from django.db import transaction

        principals = [
            _member_principal(
                self.account, _uuid(m.get("member_id"), "member_id"), str(m.get("member_type", ""))
            )
            for m in members
        ]
        with transaction.atomic():
            for principal in principals:
                rbac.team_member_add(team=team, principal=principal, actor=request.user)
        return Response(team_wire(team))

    post = put


class TeamMemberApi(_TeamLookup, AccountApi):
    required_permissions = {"DELETE": "update:team"}

    def delete(self, request, team_id, actor_id, **kwargs):
        team = self._team(team_id)
        actor_id = _path_id(actor_id, "Team member")
        member = (
            TeamMember.objects.filter(team=team)
            .filter(Q(user_id=actor_id) | Q(service_account_id=actor_id))
            .first()
        )
        if member is None:
            raise NotFound("This principal is not a member of the team.")
        rbac.team_member_remove(team=team, principal=member.principal, actor=request.user)
        return Response(status=204)


# --- workspaces -------------------------------------------------------------------------------------


class WorkspacesApi(AccountApi):
    required_permissions = {"POST": "create:workspace"}

    def post(self, request, **kwargs):
        from accounts.tenancy import workspace_create

        body = self.body()
        workspace = workspace_create(
            account=self.account,
            name=body.get("name") or "",
            handle=body.get("handle"),
            description=body.get("description"),
            actor=request.user,
        )
        return Response(workspace_wire(workspace), status=201)


class WorkspacesFilterApi(AccountApi):
    required_permissions = {"POST": "read:workspace"}

    def post(self, request, **kwargs):
        body = self.body()
        workspaces = [workspace for workspace, _ in workspaces_of(request.user, account=self.account)]
        handles = _any(body, "workspaces", "handle")
        if handles is not None:
            workspaces = [w for w in workspaces if w.handle in handles]
        ids = _any(body, "workspaces", "id")
        if ids is not None:
            wanted = {str(value) for value in ids}
            workspaces = [w for w in workspaces if str(w.id) in wanted]
        return Response([workspace_wire(w) for w in _page(body, workspaces)])


class AccountWorkspaceApi(AccountApi):
    required_permissions = {
        "GET": "read:workspace",
        "PATCH": "administrate:workspace",
        "DELETE": "delete:workspace",
    }

    def _visible(self, workspace_id) -> Workspace:
        workspace = self._workspace(workspace_id)
        if workspace_access(self.request.user, workspace) is None:
            raise NotFound("Workspace not found.")
        return workspace

    def get(self, request, workspace_id, **kwargs):
        return Response(workspace_wire(self._visible(workspace_id)))

    def patch(self, request, workspace_id, **kwargs):
        from accounts.tenancy import workspace_update

        workspace = self._workspace(workspace_id)
        body = self.body()
        changes = {key: body[key] for key in ("name", "handle", "description") if body.get(key) is not None}
        if changes:
            workspace = workspace_update(workspace=workspace, actor=request.user, **changes)
        if "default_workspace_role_id" in body:
            value = body["default_workspace_role_id"]
            role = self._workspace_role(value, "default_workspace_role_id") if value is not None else None
            rbac.workspace_default_role_set(workspace=workspace, role=role, actor=request.user)
        return Response(workspace_wire(workspace))

    def delete(self, request, workspace_id, **kwargs):
        from accounts.tenancy import workspace_delete

        workspace_delete(workspace=self._workspace(workspace_id), actor=request.user)
        return Response(status=204)


# --- invitations ----------------------------------------------------------------------------------


class InvitationsApi(AccountApi):
    required_permissions = {"POST": "create:invitation"}

    def post(self, request, **kwargs):
        body = self.body()
        grants = []
        for entry in body.get("workspace_grants") or []:
            if not isinstance(entry, dict):
                raise Unprocessable("workspace_grants must be a list of objects.", code="invalid_grants")
            grants.append(
                (
                    self._workspace(entry.get("workspace_id")),
                    self._workspace_role(entry.get("workspace_role_id")),
                )
            )
        invitation, token = rbac.invitation_create(
            account=self.account,
            email=body.get("email") or "",
            account_role=self._account_role(body),
            workspace_grants=grants,
            actor=request.user,
        )
        return Response([invitation_wire(invitation, token=token)], status=201)


class InvitationsFilterApi(AccountApi):
    required_permissions = {"POST": "read:invitation"}

    def post(self, request, **kwargs):
        body = self.body()
        invitations = Invitation.objects.filter(account=self.account).order_by("-created")
        return Response([invitation_wire(i) for i in _page(body, invitations)])


class _InvitationLookup:
    def _invitation(self, invitation_id) -> Invitation:
        invitation = Invitation.objects.filter(
            account=self.account, pk=_path_id(invitation_id, "Invitation")
        ).first()
        if invitation is None:
            raise NotFound("Invitation not found.")
        return invitation


class InvitationApi(_InvitationLookup, AccountApi):
    required_permissions = {"GET": "read:invitation"}

    def get(self, request, invitation_id, **kwargs):
        return Response(invitation_wire(self._invitation(invitation_id)))


class InvitationRevokeApi(_InvitationLookup, AccountApi):
    required_permissions = {"POST": "update:invitation"}

    def post(self, request, invitation_id, **kwargs):
        invitation = rbac.invitation_revoke(invitation=self._invitation(invitation_id), actor=request.user)
        return Response(invitation_wire(invitation))


class InvitationAcceptApi(_ApiMixin, APIView):
    """``POST /api/invitations/<id>/accept`` with ``{"token": …}``: by the invited person signed in
    (a key or a session of the invited email), or, for someone new, without credentials and with
    ``{"token", "password", "first_name"?, "last_name"?}``, which creates their user."""

    permission_classes = []

    def post(self, request, invitation_id):
        body = self.body()
        token = str(body.get("token") or "")
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            password = body.get("password")
            if not isinstance(password, str) or not password:
                raise drf_exceptions.NotAuthenticated()
            membership = rbac.invitation_accept_new_user(
                invitation_id=invitation_id,
                token=token,
                password=password,
                first_name=str(body.get("first_name") or ""),
                last_name=str(body.get("last_name") or ""),
            )
        elif isinstance(user, User):
            membership = rbac.invitation_accept(invitation_id=invitation_id, token=token, user=user)
        else:
            raise NotFound("Invitation not found.")
        return Response(membership_wire(membership), status=201)


# --- account settings ------------------------------------------------------------------------------


class AccountSettingsApi(AccountApi):
    required_permissions = {"GET": "read:account", "PATCH": "update:account"}

    def get(self, request, **kwargs):
        return Response(rbac.account_settings(self.account))

    def patch(self, request, **kwargs):
        from audit.context import client_ip

        body = self.body()
        changes = body.get("settings", body) if isinstance(body.get("settings"), dict) else body
        return Response(
            rbac.account_settings_update(
                account=self.account, changes=changes, actor=request.user, requester_ip=client_ip(request)
            )
        )


# --- IP allowlist ---------------------------------------------------------------------------------


class IpAllowlistApi(AccountApi):
    """``GET``/``PUT ip_allowlist``: the whole list, ``{"entries": [{ip_network, enabled,
    description, last_seen}]}`` (what ``prefect cloud ip-allowlist`` reads and writes)."""

    required_permissions = {"GET": "read:ip_allowlist", "PUT": "update:ip_allowlist"}

    def get(self, request, **kwargs):
        from accounts import ip_allowlist

        return Response(ip_allowlist.allowlist_read(self.account))

    def put(self, request, **kwargs):
        from accounts import ip_allowlist
        from audit.context import client_ip

        body = self.body()
        if "entries" not in body:
            raise Unprocessable("The body must hold entries.", code="invalid_body")
        return Response(
            ip_allowlist.allowlist_replace(
                account=self.account,
                entries=body["entries"],
                actor=request.user,
                requester_ip=client_ip(request),
            )
        )


class IpAllowlistMyAccessApi(AccountApi):
    """``GET ip_allowlist/my_access``: would the caller's address be allowed with enforcement on."""

    required_permissions = {"GET": MEMBERS}
    ip_allowlist_exempt = True

    def get(self, request, **kwargs):
        from accounts import ip_allowlist
        from audit.context import client_ip

        return Response(ip_allowlist.my_access(self.account, client_ip(request)))


class IpAllowlistDryRunApi(AccountApi):
    """``POST ip_allowlist/dry_run`` with a proposed ``{"entries": […]}``: which members and keys,
    by the addresses they were seen at in the last 30 days, it would block. Nothing is saved."""

    required_permissions = {"POST": "update:ip_allowlist"}

    def post(self, request, **kwargs):
        from accounts import ip_allowlist

        return Response(ip_allowlist.dry_run(self.account, self.body().get("entries")))


# --- a person's own keys ------------------------------------------------------------------------


class _OwnKeysMixin(_ApiMixin):
    permission_classes = [IsAuthenticated]

    def _owner(self, user_id) -> User:
        principal = self.request.user
        if not isinstance(principal, User) or str(principal.pk) != str(_path_id(user_id, "User")):
            raise NotFound("User not found.")
        return principal


class UserApiKeysApi(_OwnKeysMixin, APIView):
    def get(self, request, user_id):
        user = self._owner(user_id)
        keys = ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created")
        name = request.query_params.get("name")
        if name:
            keys = keys.filter(name=name)
        return Response([_key_wire(key) for key in keys])

    def post(self, request, user_id):
        user = self._owner(user_id)
        if request.auth is None:  # a browser session, not a key
            from accounts.sso.enforcement import key_creation_refusal

            refusal = key_creation_refusal(request._request)
            if refusal is not None:
                raise Forbidden(refusal, code="sso_required")
        body = self.body()
        scopes = body.get("scopes")
        if scopes is not None and not isinstance(scopes, list):
            raise Unprocessable("scopes must be a list of scope names.", code="invalid_scopes")
        key, plaintext = api_key_create(
            owner=user,
            name=body.get("name") or "",
            actor=user,
            expires_at=_datetime(body.get("expiration"), "expiration"),
            scopes=scopes,
        )
        return Response(_key_wire(key, plaintext), status=201)


class UserApiKeyApi(_OwnKeysMixin, APIView):
    def _key(self, user, key_id) -> ApiKey:
        key = ApiKey.objects.filter(
            user=user, pk=_path_id(key_id, "API key"), revoked_at__isnull=True
        ).first()
        if key is None:
            raise NotFound("API key not found.")
        return key

    def get(self, request, user_id, key_id):
        return Response(_key_wire(self._key(self._owner(user_id), key_id)))

    def delete(self, request, user_id, key_id):
        user = self._owner(user_id)
        api_key_revoke(key=self._key(user, key_id), actor=user)
        return Response(status=204)


# --- workspace access (under a workspace) ----------------------------------------------------------


class _WorkspaceAccessBase(_ApiMixin, WorkspaceApiView):
    kind: str  # "user" | "bot" | "team"

    def _grants(self):
        grants = WorkspaceRoleGrant.objects.for_workspace(self.workspace.pk).select_related(
            "user", "service_account", "team", "custom_role"
        )
        field = {"user": "user", "bot": "service_account", "team": "team"}[self.kind]
        return grants.filter(**{f"{field}__isnull": False}).order_by("created")

    def _principal(self, entry: dict):
        key = {"user": "user_id", "bot": "bot_id", "team": "team_id"}[self.kind]
        principal_id = _uuid(entry.get(key), key)
        account = self.workspace.account
        if self.kind == "user":
            principal = User.objects.filter(pk=principal_id, memberships__account=account).first()
        elif self.kind == "bot":
            principal = ServiceAccount.objects.filter(pk=principal_id, account=account).first()
        else:
            principal = Team.objects.filter(pk=principal_id, account=account).first()
        if principal is None:
            raise NotFound(f"No such {self.kind} in this account.")
        return principal

    def upsert(self, request):
        data = request.data
        entries = data if isinstance(data, list) else [data]
        if not entries or not all(isinstance(entry, dict) for entry in entries):
            raise Unprocessable("The body must be an object or a list of objects.", code="invalid_body")
        resolved = []
        for entry in entries:
            role = workspace_role_resolve(
                _uuid(entry.get("workspace_role_id"), "workspace_role_id"), account=self.workspace.account
            )
            if role is None:
                raise NotFound("Workspace role not found.")
            resolved.append((self._principal(entry), role))
        from django.db import transaction

        with transaction.atomic():
            grants = [
                workspace_access_grant(
                    workspace=self.workspace, principal=principal, role=role, actor=request.user
                )
                for principal, role in resolved
            ]
        ids = [grant.pk for grant in grants]
        return Response([grant_wire(grant) for grant in self._grants().filter(pk__in=ids)])

    def filter(self, request):
        return Response([grant_wire(grant) for grant in _page(self.body(), self._grants())])


class UserAccessApi(_WorkspaceAccessBase):
    kind = "user"
    required_scopes = {"POST": "manage_workspace_users", "PUT": "manage_workspace_users"}

    def post(self, request):
        return self.upsert(request)

    put = post


class UserAccessFilterApi(_WorkspaceAccessBase):
    kind = "user"
    required_scopes = {"POST": "see_workspace_users"}

    def post(self, request):
        return self.filter(request)


class BotAccessApi(UserAccessApi):
    kind = "bot"
    required_scopes = {
        "POST": "manage_workspace_service_accounts",
        "PUT": "manage_workspace_service_accounts",
    }


class BotAccessFilterApi(UserAccessFilterApi):
    kind = "bot"
    required_scopes = {"POST": "see_workspace_service_accounts"}


class TeamAccessApi(UserAccessApi):
    kind = "team"
    required_scopes = {"POST": "manage_workspace_teams", "PUT": "manage_workspace_teams"}


class TeamAccessFilterApi(UserAccessFilterApi):
    kind = "team"
    required_scopes = {"POST": "see_workspace_users"}


class _AccessItemApi(_WorkspaceAccessBase):
    def _grant(self, access_id) -> WorkspaceRoleGrant:
        grant = self._grants().filter(pk=_path_id(access_id, "Workspace access")).first()
        if grant is None:
            raise NotFound("Workspace access not found.")
        return grant

    def get(self, request, access_id):
        return Response(grant_wire(self._grant(access_id)))

    def delete(self, request, access_id):
        grant = self._grant(access_id)
        workspace_access_revoke(workspace=self.workspace, principal=grant.principal, actor=request.user)
        return Response(status=204)


class UserAccessItemApi(_AccessItemApi):
    kind = "user"
    required_scopes = {"GET": "see_workspace_users", "DELETE": "manage_workspace_users"}


class BotAccessItemApi(_AccessItemApi):
    kind = "bot"
    required_scopes = {"GET": "see_workspace_service_accounts", "DELETE": "manage_workspace_service_accounts"}


class TeamAccessItemApi(_AccessItemApi):
    """Team access is addressed by the team's id (as Prefect Cloud does) or by the access id."""

    kind = "team"
    required_scopes = {"GET": "see_workspace_users", "DELETE": "manage_workspace_teams"}

    def _grant(self, access_id) -> WorkspaceRoleGrant:
        access_id = _path_id(access_id, "Workspace access")
        grant = self._grants().filter(Q(pk=access_id) | Q(team_id=access_id)).first()
        if grant is None:
            raise NotFound("Workspace access not found.")
        return grant


class AccessExplainApi(_ApiMixin, WorkspaceApiView):
    """Whether an actor (user or bot of the account) holds a scope in this workspace, and through
    which grants: its account role, direct grants, its teams, the workspace default role."""

    required_scopes = {"GET": "see_workspace_users"}

    def get(self, request):
        actor_id = _uuid(request.query_params.get("actor"), "actor")
        scope = request.query_params.get("scope")
        if scope is not None and scope not in SCOPES_BY_NAME:
            raise Unprocessable(f"Unknown workspace scope: {scope}.", code="unknown_scope")
        account = self.workspace.account
        actor = (
            User.objects.filter(pk=actor_id, memberships__account=account).first()
            or ServiceAccount.objects.filter(pk=actor_id, account=account).first()
        )
        if actor is None:
            raise NotFound("No such user or bot in this account.")
        account_role, sources = workspace_access_sources(actor, self.workspace)
        granting = [source for source in sources if scope is None or scope in source.scopes]
        scopes = frozenset().union(*(source.scopes for source in sources)) if sources else frozenset()
        return Response(
            {
                "actor_id": str(actor.pk),
                "actor_type": "user" if isinstance(actor, User) else "bot",
                "workspace_id": str(self.workspace.pk),
                "scope": scope,
                "account_role": AccountRole(account_role).label if account_role else None,
                "has_access": bool(sources),
                "allowed": (scope in scopes) if scope is not None else bool(sources),
                "granted_by": [source.as_wire() for source in granting],
                "sources": [source.as_wire() for source in sources],
                "scopes": sorted(scopes),
            }
        )


# --- audit events -----------------------------------------------------------------------------------


class AuditEventsApi(AccountApi):
    """``GET audit_events``: the account's audit trail, newest first, with filters (``event``,
    ``actor``, ``workspace``, ``since``, ``until``) and cursor paging (``limit`` ≤ 200, ``cursor``
    from the previous page's ``next_cursor``). Each event carries its place in the hash chain."""

    required_permissions = {"GET": "read:audit_event"}

    def get(self, request, **kwargs):
        from audit.export import entry_record
        from audit.models import AuditLogEntry
        from billing.entitlements import ensure_feature

        ensure_feature(self.account, "audit_log")
        params = request.query_params
        entries = AuditLogEntry.objects.filter(chain=self.account.pk, sequence__gt=0)
        if params.get("event"):
            entries = entries.filter(api_name=params["event"])
        if params.get("workspace"):
            entries = entries.filter(workspace_ref=_uuid(params["workspace"], "workspace"))
        if params.get("actor"):
            actor = _uuid(params["actor"], "actor")
            entries = entries.filter(Q(actor_user_id=actor) | Q(actor_service_account_id=actor))
        if params.get("since"):
            entries = entries.filter(occurred__gte=_datetime(params["since"], "since"))
        if params.get("until"):
            entries = entries.filter(occurred__lt=_datetime(params["until"], "until"))
        if params.get("cursor"):
            try:
                before = int(params["cursor"])
            except ValueError:
                raise Unprocessable("cursor is not one this API gave.", code="invalid_cursor") from None
            entries = entries.filter(sequence__lt=before)
        try:
            limit = int(params.get("limit", 50))
        except ValueError:
            raise Unprocessable("limit must be an integer.", code="invalid_paging") from None
        if not 1 <= limit <= 200:
            raise Unprocessable("limit must be between 1 and 200.", code="invalid_paging")
        page = list(entries.order_by("-sequence")[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return Response(
            {
                "events": [entry_record(entry) for entry in page],
                "next_cursor": str(page[-1].sequence) if more else None,
            }
        )


# --- the account itself ---------------------------------------------------------------------------


def account_wire(account) -> dict:
    from billing.entitlements import plan_for

    plan = plan_for(account)
    return {
        "id": str(account.id),
        "created": _iso(account.created),
        "updated": _iso(account.updated),
        "name": account.name,
        "handle": account.handle,
        "location": None,
        "link": None,
        "image_location": None,
        "auth_expiration_seconds": (account.settings or {}).get("auth_expiration_seconds"),
        "settings": rbac.account_settings(account),
        "plan_type": plan.key.upper(),
        "self_serve": plan.self_serve,
        "features": sorted(plan.features),
        "audit_log_retention_days": plan.audit_log_retention_days,
        "max_seats": plan.max_seats,
        "max_workspaces": plan.max_workspaces,
        "max_deployments_per_workspace": plan.max_deployments,
    }


class AccountDetailApi(AccountApi):
    """``GET``/``PATCH /api/accounts/<id>`` (and with a trailing slash, as the Terraform provider
    sends it): the account, its plan and settings; ``name`` and ``handle`` can change."""

    required_permissions = {"GET": "read:account", "PATCH": "update:account"}

    def get(self, request, **kwargs):
        return Response(account_wire(self.account))

    def patch(self, request, **kwargs):
        from accounts.tenancy import account_update
        from audit.context import client_ip

        body = self.body()
        settings_changes = body.get("settings")
        if settings_changes is not None and not isinstance(settings_changes, dict):
            raise Unprocessable("settings must be an object.")
        # One change: a refused setting leaves the name and handle as they were too.
        with transaction.atomic():
            account = account_update(
                account=self.account, actor=request.user, name=body.get("name"), handle=body.get("handle")
            )
            if settings_changes:
                rbac.account_settings_update(
                    account=account,
                    changes=settings_changes,
                    actor=request.user,
                    requester_ip=client_ip(request),
                )
                account.refresh_from_db()
        return Response(account_wire(account))
