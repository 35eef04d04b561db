"""What an account uses of orchestration, for its plan's limits (billing asks through
``settings.BILLING_DEPLOYMENT_COUNTER``, since it imports no app above it)."""

from __future__ import annotations

from orchestration.models import Deployment


def deployments_count_for_account(account) -> int:
    # The plan limits the whole account: count every workspace's deployments, deliberately across
    # tenants (.unscoped()), narrowed to this account.
    return Deployment.objects.unscoped().filter(workspace__account_id=account.pk).count()
