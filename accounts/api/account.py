"""``/api/accounts/<id>``: the account, its plan and settings."""

from __future__ import annotations

from typing import Annotated, Any

from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, Body, checked, iso
from audit.context import client_ip
from billing.entitlements import plan_for


def account_wire(account) -> dict:
    plan = plan_for(account)
    return {
        "id": str(account.id),
        "created": iso(account.created),
        "updated": iso(account.updated),
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


class AccountChange(Body):
    name: Any = None
    handle: Any = None
    settings: Annotated[
        Any,
        checked(
            lambda value: value is None or isinstance(value, dict),
            "settings must be an object.",
            "unprocessable",
        ),
    ] = None


class AccountDetailApi(AccountApi):
    """``GET``/``PATCH /api/accounts/<id>`` (and with a trailing slash, as the Terraform provider
    sends it): the account, its plan and settings; ``name`` and ``handle`` can change."""

    required_permissions = {"GET": "read:account", "PATCH": "update:account"}

    def get(self, request, **kwargs):
        return Response(account_wire(self.account))

    def patch(self, request, **kwargs):
        body = self.parse(AccountChange)
        account = rbac.account_update_with_settings(
            account=self.account,
            actor=request.user,
            name=body.name,
            handle=body.handle,
            settings_changes=body.settings,
            requester_ip=client_ip(request),
        )
        return Response(account_wire(account))
