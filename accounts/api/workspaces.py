"""``workspaces/…`` under the account: create, list, change and delete workspaces."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, Body, BodyUUID, any_filter, iso, paged
from accounts.roles import role_of
from accounts.selectors import workspace_access, workspace_default_role_get, workspaces_of
from accounts.tenancy import workspace_create, workspace_delete
from core.errors import NotFound
from tenants.models import Workspace


def workspace_wire(workspace: Workspace) -> dict:
    default = workspace_default_role_get(workspace)
    return {
        "id": str(workspace.id),
        "created": iso(workspace.created),
        "updated": iso(workspace.updated),
        "account_id": str(workspace.account_id),
        "name": workspace.name,
        "description": workspace.description or "",
        "handle": workspace.handle,
        "default_workspace_role_id": str(role_of(default).id) if default else None,
        "is_public": False,
    }


class WorkspaceFields(Body):
    name: Any = None
    handle: Any = None
    description: Any = None


class WorkspacesApi(AccountApi):
    required_permissions = {"POST": "create:workspace"}

    def post(self, request, **kwargs):
        body = self.parse(WorkspaceFields)
        workspace = workspace_create(
            account=self.account,
            name=body.name or "",
            handle=body.handle,
            description=body.description,
            actor=request.user,
        )
        return Response(workspace_wire(workspace), status=201)


class WorkspacesFilterApi(AccountApi):
    required_permissions = {"POST": "read:workspace"}

    def post(self, request, **kwargs):
        body = self.body()
        workspaces = [workspace for workspace, _ in workspaces_of(request.user, account=self.account)]
        handles = any_filter(body, "workspaces", "handle")
        if handles is not None:
            workspaces = [w for w in workspaces if w.handle in handles]
        ids = any_filter(body, "workspaces", "id")
        if ids is not None:
            wanted = {str(value) for value in ids}
            workspaces = [w for w in workspaces if str(w.id) in wanted]
        return Response([workspace_wire(w) for w in paged(body, workspaces)])


class WorkspaceChange(WorkspaceFields):
    default_workspace_role_id: BodyUUID = None


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
        workspace = self._workspace(workspace_id)
        body = self.parse(WorkspaceChange)
        changes = {
            key: getattr(body, key)
            for key in ("name", "handle", "description")
            if getattr(body, key) is not None
        }
        extra = {}
        if "default_workspace_role_id" in body.model_fields_set:
            role_id = body.default_workspace_role_id
            extra["default_role"] = self._workspace_role(role_id) if role_id is not None else None
        workspace = rbac.workspace_update_with_default_role(
            workspace=workspace, actor=request.user, changes=changes, **extra
        )
        return Response(workspace_wire(workspace))

    def delete(self, request, workspace_id, **kwargs):
        workspace_delete(workspace=self._workspace(workspace_id), actor=request.user)
        return Response(status=204)
