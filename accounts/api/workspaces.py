"""``workspaces/…`` under the account: create, list, change and delete workspaces."""

from __future__ import annotations

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, any_filter, iso, paged
from accounts.roles import role_of
from accounts.selectors import workspace_access, workspaces_of
from core.errors import NotFound
from tenants.models import Workspace


def workspace_wire(workspace: Workspace) -> dict:
    from accounts.models import WorkspaceDefaultRole

    default = WorkspaceDefaultRole.objects.select_related("custom_role").filter(workspace=workspace).first()
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
        handles = any_filter(body, "workspaces", "handle")
        if handles is not None:
            workspaces = [w for w in workspaces if w.handle in handles]
        ids = any_filter(body, "workspaces", "id")
        if ids is not None:
            wanted = {str(value) for value in ids}
            workspaces = [w for w in workspaces if str(w.id) in wanted]
        return Response([workspace_wire(w) for w in paged(body, workspaces)])


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
