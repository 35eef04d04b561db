"""``workspace_roles/…``: built-in and custom workspace roles."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, Body, BodyUUID, any_filter, paged, path_id
from accounts.models import CustomRole
from accounts.permissions import WorkspaceRole
from accounts.roles import (
    BUILTIN_WORKSPACE_ROLE_BY_ID,
    builtin_workspace_role_wire,
    custom_role_wire,
    workspace_role_resolve,
)
from accounts.selectors import custom_role_get, custom_role_list
from core.errors import NotFound, Unprocessable


class RoleFields(Body):
    name: Any = None
    description: Any = None
    scopes: Any = None
    permissions: Any = None  # what older clients call scopes
    inherited_role_id: BodyUUID = None


def _role_fields(body: RoleFields, *, partial: bool) -> dict:
    """The service's arguments: on a partial update only the keys the body holds."""
    sent = body.model_fields_set
    fields: dict[str, Any] = {}
    if "name" in sent or not partial:
        fields["name"] = body.name
    if "description" in sent:
        fields["description"] = body.description or ""
    if "scopes" in sent or "permissions" in sent:
        fields["scopes"] = body.scopes if "scopes" in sent else body.permissions
    if "inherited_role_id" in sent:
        if body.inherited_role_id is None:
            fields["inherited_role"] = ""
        else:
            inherited = BUILTIN_WORKSPACE_ROLE_BY_ID.get(body.inherited_role_id)
            if inherited is None:
                raise Unprocessable(
                    "A custom role can inherit only a built-in role.", code="invalid_inherited_role"
                )
            fields["inherited_role"] = inherited.value
    return fields


class WorkspaceRolesApi(AccountApi):
    required_permissions = {"POST": "create:workspace_role"}

    def post(self, request, **kwargs):
        fields = _role_fields(self.parse(RoleFields), partial=False)
        role = rbac.custom_role_create(account=self.account, actor=request.user, **fields)
        return Response(custom_role_wire(role), status=201)


class WorkspaceRolesFilterApi(AccountApi):
    required_permissions = {"POST": "read:workspace_role"}

    def post(self, request, **kwargs):
        body = self.body()
        names = any_filter(body, "workspace_roles", "name")
        ids = any_filter(body, "workspace_roles", "id")
        result = [builtin_workspace_role_wire(role) for role in WorkspaceRole]
        result += [custom_role_wire(role) for role in custom_role_list(account=self.account)]
        if names is not None:
            result = [role for role in result if role["name"] in names]
        if ids is not None:
            wanted = {str(value) for value in ids}
            result = [role for role in result if role["id"] in wanted]
        return Response(paged(body, result))


class WorkspaceRoleApi(AccountApi):
    required_permissions = {
        "GET": "read:workspace_role",
        "PATCH": "update:workspace_role",
        "DELETE": "delete:workspace_role",
    }

    def _custom(self, role_id) -> CustomRole:
        role_id = path_id(role_id, "Workspace role")
        role = custom_role_get(account=self.account, role_id=role_id)
        if role is None:
            if role_id in BUILTIN_WORKSPACE_ROLE_BY_ID:
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
        rbac.custom_role_update(
            role=role, actor=request.user, **_role_fields(self.parse(RoleFields), partial=True)
        )
        return Response(status=204)

    def delete(self, request, role_id, **kwargs):
        rbac.custom_role_delete(role=self._custom(role_id), actor=request.user)
        return Response(status=204)
