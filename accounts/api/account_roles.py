"""``account_roles/filter`` and ``account_roles/<id>``: the built-in account roles."""

from __future__ import annotations

from rest_framework.response import Response

from accounts.api.base import AccountApi, any_filter
from accounts.permissions import AccountRole
from accounts.roles import (
    account_role_resolve,
    account_role_wire,
)
from core.errors import NotFound


class AccountRolesFilterApi(AccountApi):
    required_permissions = {"POST": "read:account_role"}

    def post(self, request, **kwargs):
        body = self.body()
        names = any_filter(body, "account_roles", "name")
        roles = [role for role in AccountRole if names is None or role.label in names]
        return Response([account_role_wire(role) for role in roles])


class AccountRoleApi(AccountApi):
    required_permissions = {"GET": "read:account_role"}

    def get(self, request, role_id, **kwargs):
        role = account_role_resolve(role_id)
        if role is None:
            raise NotFound("Account role not found.")
        return Response(account_role_wire(role))
