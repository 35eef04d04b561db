"""``settings``: the account's settings."""

from __future__ import annotations

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi
from audit.context import client_ip


class AccountSettingsApi(AccountApi):
    required_permissions = {"GET": "read:account", "PATCH": "update:account"}

    def get(self, request, **kwargs):
        return Response(rbac.account_settings(self.account))

    def patch(self, request, **kwargs):
        body = self.body()
        changes = body.get("settings", body) if isinstance(body.get("settings"), dict) else body
        return Response(
            rbac.account_settings_update(
                account=self.account, changes=changes, actor=request.user, requester_ip=client_ip(request)
            )
        )
