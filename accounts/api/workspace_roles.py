"""``workspace_roles/…``: built-in and custom workspace roles."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, any_filter, body_uuid, paged, path_id
from accounts.models import CustomRole
from accounts.permissions import WorkspaceRole
from accounts.roles import (
    builtin_workspace_role_wire,
    custom_role_wire,
    workspace_role_resolve,
)
from core.errors import NotFound, Unprocessable


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

            inherited = BUILTIN_WORKSPACE_ROLE_BY_ID.get(body_uuid(value, "inherited_role_id"))
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
        names = any_filter(body, "workspace_roles", "name")
        ids = any_filter(body, "workspace_roles", "id")
        result = [builtin_workspace_role_wire(role) for role in WorkspaceRole]
        result += [custom_role_wire(role) for role in CustomRole.objects.filter(account=self.account)]
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
        role = CustomRole.objects.filter(account=self.account, pk=path_id(role_id, "Workspace role")).first()
        if role is None:
            from accounts.roles import BUILTIN_WORKSPACE_ROLE_BY_ID

            if path_id(role_id, "Workspace role") in BUILTIN_WORKSPACE_ROLE_BY_ID:
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
