"""``teams/…``: teams and their members."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import (
    AccountApi,
    Body,
    any_filter,
    body_uuid,
    iso,
    list_of_objects,
    paged,
    path_id,
)
from accounts.api.memberships import handle_of
from accounts.models import ServiceAccount, Team, User
from accounts.roles import role_of
from accounts.selectors import (
    account_principal_get,
    team_get,
    team_list,
    team_member_get,
    team_member_list,
    team_workspace_grants,
)
from core.errors import NotFound, Unprocessable


def team_wire(team: Team) -> dict:
    memberships = []
    for member in team_member_list(team):
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
    for grant in team_workspace_grants(team):
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


class TeamFields(Body):
    name: Any = None
    description: Any = None


class TeamsApi(AccountApi):
    required_permissions = {"POST": "create:team"}

    def post(self, request, **kwargs):
        body = self.parse(TeamFields)
        team = rbac.team_create(
            account=self.account, name=body.name, description=body.description or "", actor=request.user
        )
        return Response(team_wire(team), status=201)


class TeamsFilterApi(AccountApi):
    required_permissions = {"POST": "read:team"}

    def post(self, request, **kwargs):
        body = self.body()
        names = any_filter(body, "teams", "name")
        ids = any_filter(body, "teams", "id")
        teams = team_list(
            account=self.account,
            names=names,
            ids=[body_uuid(value, "id") for value in ids] if ids is not None else None,
        )
        return Response([team_wire(team) for team in paged(body, teams)])


class _TeamLookup:
    def _team(self, team_id) -> Team:
        team = team_get(account=self.account, team_id=path_id(team_id, "Team"))
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
        body = self.parse(TeamFields)
        team = rbac.team_update(team=team, actor=request.user, name=body.name, description=body.description)
        return Response(team_wire(team))

    patch = put

    def delete(self, request, team_id, **kwargs):
        rbac.team_delete(team=self._team(team_id), actor=request.user)
        return Response(status=204)


class TeamMembersChange(Body):
    members: Annotated[
        Any,
        list_of_objects("members must be a list of {member_id, member_type}.", "invalid_members"),
        Field(validate_default=True),
    ] = None


_MEMBER_KINDS = {"user": "user", "service_account": "bot", "bot": "bot"}


class TeamMembersApi(_TeamLookup, AccountApi):
    """``PUT``/``POST {"members": [{member_id, member_type}]}``: add them to the team (members not
    listed stay)."""

    required_permissions = {"PUT": "update:team", "POST": "update:team"}

    def _principal(self, entry: dict) -> User | ServiceAccount:
        member_id = body_uuid(entry.get("member_id"), "member_id")
        kind = _MEMBER_KINDS.get(str(entry.get("member_type", "")))
        if kind is None:
            raise Unprocessable(
                "member_type must be 'user' or 'service_account'.", code="invalid_member_type"
            )
        principal = account_principal_get(account=self.account, kind=kind, principal_id=member_id)
        if principal is None:
            raise NotFound("No such member or service account in this account.")
        return principal

    def put(self, request, team_id, **kwargs):
        team = self._team(team_id)
        members = self.parse(TeamMembersChange).members
        principals = [self._principal(entry) for entry in members]
        team = rbac.team_members_add(team=team, principals=principals, actor=request.user)
        return Response(team_wire(team))

    post = put


class TeamMemberApi(_TeamLookup, AccountApi):
    required_permissions = {"DELETE": "update:team"}

    def delete(self, request, team_id, actor_id, **kwargs):
        team = self._team(team_id)
        member = team_member_get(team=team, principal_id=path_id(actor_id, "Team member"))
        if member is None:
            raise NotFound("This principal is not a member of the team.")
        rbac.team_member_remove(team=team, principal=member.principal, actor=request.user)
        return Response(status=204)
