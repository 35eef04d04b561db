"""What an account's plan allows. Every door a seat or object can come through asks here.

``check_*`` returns a ``Decision``; ``ensure_*`` raises ``PlanLimitExceeded`` with a message a
person can act on. Callers that add something lock the account row first
(``select_for_update``) so two concurrent additions cannot both take the last free slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from billing.plans import PLANS, Feature, Plan, get_plan, with_contract_limits
from core.errors import PlanLimitExceeded
from tenants.models import Account


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    limit: int | None = None
    used: int | None = None

    def __bool__(self) -> bool:
        return self.allowed


def plan_for(account) -> Plan:
    """The account's plan, with the limits an operator set for it when the plan is sold by contract."""
    return with_contract_limits(get_plan(account.plan), account.plan_limits)


def seats_used(account) -> int:
    """Seats taken: every active member, and every pending invitation that has not expired (an
    invitation holds its seat from the moment it is sent, so invitations cannot overbook)."""

    members = account.memberships.filter(user__is_active=True).count()
    invited = account.invitations.filter(status="PENDING", expires_at__gt=timezone.now()).count()
    return members + invited


def _limit(account, *, what: str, limit: int | None, used: int, adding: int) -> Decision:
    if limit is None or used + adding <= limit:
        return Decision(True, limit=limit, used=used)
    plan = plan_for(account)
    return Decision(
        False,
        reason=(
            f"The {plan.name} plan allows {limit} {what}; this account has {used}. "
            "Upgrade the plan or free one up."
        ),
        limit=limit,
        used=used,
    )


def check_seat(account, *, adding: int = 1) -> Decision:
    return _limit(
        account, what="seats", limit=plan_for(account).max_seats, used=seats_used(account), adding=adding
    )


def check_workspace(account, *, adding: int = 1) -> Decision:
    return _limit(
        account,
        what="workspaces",
        limit=plan_for(account).max_workspaces,
        used=account.workspaces.count(),
        adding=adding,
    )


def check_deployment(account, *, deployments_used: int, adding: int = 1) -> Decision:
    """``deployments_used`` comes from the caller (billing does not read orchestration)."""
    return _limit(
        account,
        what="deployments",
        limit=plan_for(account).max_deployments,
        used=deployments_used,
        adding=adding,
    )


def check_webhook(account, *, webhooks_used: int, adding: int = 1) -> Decision:
    """``webhooks_used`` (the account's, in every workspace) comes from the caller."""
    return _limit(
        account, what="webhooks", limit=plan_for(account).max_webhooks, used=webhooks_used, adding=adding
    )


def check_feature(account, feature: Feature) -> Decision:
    plan = plan_for(account)
    if plan.has(feature):
        return Decision(True)
    label = feature.replace("_", " ")
    return Decision(
        False, reason=f"The {plan.name} plan does not include {label}. Upgrade the plan to use it."
    )


def ensure(decision: Decision, *, code: str) -> None:
    if not decision:
        raise PlanLimitExceeded(decision.reason, code=code)


def ensure_seat(account, *, adding: int = 1) -> None:
    ensure(check_seat(account, adding=adding), code="seat_limit")


def ensure_workspace(account, *, adding: int = 1) -> None:
    ensure(check_workspace(account, adding=adding), code="workspace_limit")


def ensure_webhook(account, *, webhooks_used: int) -> None:
    ensure(check_webhook(account, webhooks_used=webhooks_used), code="webhook_limit")


def ensure_feature(account, feature: Feature) -> None:
    ensure(check_feature(account, feature), code="feature_unavailable")


def audit_retention_policy() -> tuple[dict, int]:
    """How long each account keeps its audit trail, in days, by its plan; and the longest any plan
    keeps it (for entries of no account). ``settings.AUDIT_RETENTION_POLICY`` points here."""
    days = {
        account_id: with_contract_limits(PLANS[plan_key], limits).audit_log_retention_days
        for account_id, plan_key, limits in Account.objects.values_list("id", "plan", "plan_limits")
        if plan_key in PLANS
    }
    return days, max([plan.audit_log_retention_days for plan in PLANS.values()] + list(days.values()))
