"""``user_access``, ``bot_access`` and ``team_access`` under a workspace: who holds which role there."""

from __future__ import annotations

from rest_framework.response import Response

from access.views import WorkspaceApiView
from accounts.api.base import ApiMixin, body_uuid, iso, paged, path_id
from accounts.api.memberships import handle_of
from accounts.models import WorkspaceRoleGrant
from accounts.roles import role_of, workspace_role_resolve
from accounts.selectors import account_principal_get, workspace_grant_get, workspace_grant_list
from accounts.services import workspace_access_grant_many, workspace_access_revoke
from core.errors import NotFound, Unprocessable


def grant_wire(grant: WorkspaceRoleGrant) -> dict:
    role = role_of(grant)
    data = {
        "id": str(grant.id),
        "created": iso(grant.created),
        "updated": iso(grant.updated),
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
            handle=handle_of(user),
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


class _WorkspaceAccessBase(ApiMixin, WorkspaceApiView):
    kind: str  # "user" | "bot" | "team"

    def _grants(self):
        return workspace_grant_list(workspace=self.workspace, kind=self.kind)

    def _principal(self, entry: dict):
        key = {"user": "user_id", "bot": "bot_id", "team": "team_id"}[self.kind]
        principal = account_principal_get(
            account=self.workspace.account, kind=self.kind, principal_id=body_uuid(entry.get(key), key)
        )
        if principal is None:
            raise NotFound(f"No such {self.kind} in this account.")
        return principal

    def upsert(self, request):
        """One grant (an object) or several (a list), all or none; each entry names the principal
        (``user_id``, ``bot_id`` or ``team_id``) and the ``workspace_role_id``."""
        data = request.data
        entries = data if isinstance(data, list) else [data]
        if not entries or not all(isinstance(entry, dict) for entry in entries):
            raise Unprocessable("The body must be an object or a list of objects.", code="invalid_body")
        resolved = []
        for entry in entries:
            role = workspace_role_resolve(
                body_uuid(entry.get("workspace_role_id"), "workspace_role_id"), account=self.workspace.account
            )
            if role is None:
                raise NotFound("Workspace role not found.")
            resolved.append((self._principal(entry), role))
        grants = workspace_access_grant_many(workspace=self.workspace, grants=resolved, actor=request.user)
        ids = [grant.pk for grant in grants]
        return Response([grant_wire(grant) for grant in self._grants().filter(pk__in=ids)])

    def filter(self, request):
        return Response([grant_wire(grant) for grant in paged(self.body(), self._grants())])


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
    or_team_id = False

    def _grant(self, access_id) -> WorkspaceRoleGrant:
        grant = workspace_grant_get(
            workspace=self.workspace,
            kind=self.kind,
            grant_id=path_id(access_id, "Workspace access"),
            or_team_id=self.or_team_id,
        )
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
    or_team_id = True
