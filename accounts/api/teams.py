"""``teams/…``: teams and their members."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, any_filter, body_uuid, iso, paged, path_id
from accounts.api.memberships import handle_of
from accounts.models import (
    ServiceAccount,
    Team,
    TeamMember,
    User,
    WorkspaceRoleGrant,
)
from accounts.roles import role_of
from core.errors import NotFound, Unprocessable


def team_wire(team: Team) -> dict:
    memberships = []
    for member in team.members.select_related("user", "service_account"):
        if member.user_id:
            user = member.user
            memberships.append(
                {
                    "id": str(user.id),
                    "handle": handle_of(user),
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
        "created": iso(team.created),
        "updated": iso(team.updated),
        "account_id": str(team.account_id),
        "name": team.name,
        "description": team.description,
        "memberships": memberships,
        "workspaces": workspaces,
        "managed_by": "scim" if team.scim_managed else None,
        "external_id": team.scim_external_id or None,
    }


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
        names = any_filter(body, "teams", "name")
        if names is not None:
            teams = teams.filter(name__in=[str(name) for name in names])
        ids = any_filter(body, "teams", "id")
        if ids is not None:
            teams = teams.filter(pk__in=[body_uuid(value, "id") for value in ids])
        return Response([team_wire(team) for team in paged(body, teams)])


class _TeamLookup:
    def _team(self, team_id) -> Team:
        team = (
            Team.objects.filter(account=self.account, pk=path_id(team_id, "Team"))
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

        principals = [
            _member_principal(
                self.account, body_uuid(m.get("member_id"), "member_id"), str(m.get("member_type", ""))
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
        actor_id = path_id(actor_id, "Team member")
        member = (
            TeamMember.objects.filter(team=team)
            .filter(Q(user_id=actor_id) | Q(service_account_id=actor_id))
            .first()
        )
        if member is None:
            raise NotFound("This principal is not a member of the team.")
        rbac.team_member_remove(team=team, principal=member.principal, actor=request.user)
        return Response(status=204)
