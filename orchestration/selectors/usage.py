"""What an account uses of orchestration, for its plan's limits (billing asks through
``settings.BILLING_DEPLOYMENT_COUNTER`` and ``settings.BILLING_WEBHOOK_COUNTER``, since it imports
no app above it)."""

from __future__ import annotations

from orchestration.models import Deployment, Webhook
from tenants.rls import across_workspaces


def deployments_count_for_account(account) -> int:
    # The plan limits the whole account: count every workspace's deployments, deliberately across
    # tenants (.unscoped(), and past the request's row-level security), narrowed to this account.
    with across_workspaces():
        return Deployment.objects.unscoped().filter(workspace__account_id=account.pk).count()


def webhooks_count_for_account(account) -> int:
    # As deployments: the plan's incoming-webhook limit is the whole account's.
    with across_workspaces():
        return Webhook.objects.unscoped().filter(workspace__account_id=account.pk).count()
