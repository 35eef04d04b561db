"""``/api/accounts/<id>``: the account, its plan and settings."""

from __future__ import annotations

from django.db import transaction
from rest_framework.response import Response

from accounts import rbac
from accounts.api.base import AccountApi, iso
from core.errors import Unprocessable


def account_wire(account) -> dict:
    from billing.entitlements import plan_for

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


class AccountDetailApi(AccountApi):
    """``GET``/``PATCH /api/accounts/<id>`` (and with a trailing slash, as the Terraform provider
    sends it): the account, its plan and settings; ``name`` and ``handle`` can change."""

    required_permissions = {"GET": "read:account", "PATCH": "update:account"}

    def get(self, request, **kwargs):
        return Response(account_wire(self.account))

    def patch(self, request, **kwargs):
        from accounts.tenancy import account_update
        from audit.context import client_ip

        body = self.body()
        settings_changes = body.get("settings")
        if settings_changes is not None and not isinstance(settings_changes, dict):
            raise Unprocessable("settings must be an object.")
        # One change: a refused setting leaves the name and handle as they were too.
        with transaction.atomic():
            account = account_update(
                account=self.account, actor=request.user, name=body.get("name"), handle=body.get("handle")
            )
            if settings_changes:
                rbac.account_settings_update(
                    account=account,
                    changes=settings_changes,
                    actor=request.user,
                    requester_ip=client_ip(request),
                )
                account.refresh_from_db()
        return Response(account_wire(account))
