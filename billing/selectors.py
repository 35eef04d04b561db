"""Reads about billing: where an account stands (its phase), what it may start, its subscription,
its seat ledger and the summary the billing page shows. Nothing here writes or calls Stripe.

An account's standing is kept with the account (``Account.billing_status`` and
``billing_status_since``, like its plan), so the check on the path that starts new work reads only
the row the access gate already loaded. The phases of a failed payment follow from the clock:

- ``grace``: for ``BILLING_GRACE_DAYS`` after the payment failed everything works; responses warn.
- ``restricted``: then orchestration writes that start new work (a new deployment, a new flow run
  from the API or a schedule) are refused with a 402; runs already scheduled still execute.
- ``suspended``: ``BILLING_SUSPEND_AFTER_DAYS`` later every orchestration write is refused.

``read_only`` (a cancellation the account did not fit the free plan for) refuses new work like
``restricted``. Governance (sign-in, SSO, SCIM, the audit log, the account API, billing) is never
refused here. Paying (a webhook saying the subscription is active) restores ``active`` at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.entitlements import plan_for, seats_used
from billing.models import BillingStatus, SeatLedgerEntry, Subscription
from billing.plans import Plan, get_plan, with_contract_limits
from core.errors import PaymentRequired
from tenants.models import Account

Phase = Literal["active", "grace", "restricted", "suspended", "read_only"]
#: Stripe's statuses of a subscription that has ended: nothing more is invoiced.
ENDED: frozenset[str] = frozenset({"canceled", "incomplete_expired"})
#: Phases in which new work is refused.
NEW_WORK_REFUSED: frozenset[str] = frozenset({"restricted", "suspended", "read_only"})


def _grace() -> dt.timedelta:
    return dt.timedelta(days=settings.BILLING_GRACE_DAYS)


def _suspend_after() -> dt.timedelta:
    return dt.timedelta(days=settings.BILLING_SUSPEND_AFTER_DAYS)


def billing_phase(account: Account, *, now: dt.datetime | None = None) -> Phase:
    status = account.billing_status
    if status == BillingStatus.READ_ONLY:
        return "read_only"
    if status != BillingStatus.PAST_DUE:
        return "active"
    since = account.billing_status_since or timezone.now()
    elapsed = (now or timezone.now()) - since
    if elapsed < _grace():
        return "grace"
    if elapsed < _grace() + _suspend_after():
        return "restricted"
    return "suspended"


def grace_until(account: Account) -> dt.datetime | None:
    if account.billing_status != BillingStatus.PAST_DUE or account.billing_status_since is None:
        return None
    return account.billing_status_since + _grace()


def suspended_from(account: Account) -> dt.datetime | None:
    until = grace_until(account)
    return None if until is None else until + _suspend_after()


@dataclass(frozen=True)
class Refusal:
    phase: Phase
    reason: str


def _refusal(account: Account, phase: Phase, *, what: str) -> Refusal:
    if phase == "read_only":
        subscription = subscription_of(account)
        why = (subscription.read_only_reason if subscription else "") or "The subscription ended."
        return Refusal(phase, f"This account is read-only: {why} {what} is refused until it changes.")
    if phase == "suspended":
        return Refusal(
            phase,
            f"This account is suspended: a payment is overdue since {account.billing_status_since:%Y-%m-%d}. "
            f"{what} is refused; pay the open invoice from the billing page to restore it at once.",
        )
    return Refusal(
        phase,
        f"A payment is overdue and the grace period ended on {grace_until(account):%Y-%m-%d}. {what} is "
        "refused until the open invoice is paid (runs already scheduled still execute); pay it from the "
        "billing page to restore it at once.",
    )


def new_work_refusal(account: Account, *, now: dt.datetime | None = None) -> Refusal | None:
    phase = billing_phase(account, now=now)
    if phase not in NEW_WORK_REFUSED:
        return None
    return _refusal(account, phase, what="Starting new work")


def ensure_new_work_allowed(account: Account) -> None:
    """Raise a 402 when the account may not start new work (a deployment, a flow run)."""
    refusal = new_work_refusal(account)
    if refusal is not None:
        raise PaymentRequired(refusal.reason, code=f"billing_{refusal.phase}")


def ensure_writes_allowed(account: Account) -> None:
    """Raise a 402 when the account is suspended (every orchestration write is refused)."""
    phase = billing_phase(account)
    if phase == "suspended":
        raise PaymentRequired(_refusal(account, phase, what="Every change").reason, code="billing_suspended")


def new_work_blocked(*, prefix: str = "", now: dt.datetime | None = None) -> Q:
    """The accounts that may not start new work, as a filter (``prefix`` leads to the account:
    ``"workspace__account__"``), for the scheduler's cross-tenant batch."""
    now = now or timezone.now()
    return Q(**{f"{prefix}billing_status": BillingStatus.READ_ONLY}) | Q(
        **{
            f"{prefix}billing_status": BillingStatus.PAST_DUE,
            f"{prefix}billing_status_since__lte": now - _grace(),
        }
    )


def billing_warnings(account: Account) -> list[str]:
    phase = billing_phase(account)
    if phase == "grace":
        return [
            f"A payment failed. Everything works until {grace_until(account):%Y-%m-%d %H:%M} UTC; after "
            "that new deployments and flow runs are refused until the open invoice is paid."
        ]
    if phase in NEW_WORK_REFUSED:
        return [_refusal(account, phase, what="Starting new work").reason]
    subscription = subscription_of(account)
    if subscription is not None and subscription.cancel_at_period_end and subscription.current_period_end:
        problems = plan_change_problems(account, "hobby")
        tail = (
            " The account fits the Hobby plan and moves to it then."
            if not problems
            else " The account does not fit the Hobby plan and will become read-only unless it changes: "
            + " ".join(problems)
        )
        return [f"The subscription ends on {subscription.current_period_end:%Y-%m-%d}.{tail}"]
    return []


def billing_banner(account: Account) -> str | None:
    """The warning everyone in the account sees on every console page while a payment is overdue
    (grace, restricted, suspended) or the account is read-only; None in good standing. Reads only
    the account row the access gate loaded, but for a read-only account (its reason)."""
    if account.billing_status == BillingStatus.ACTIVE:
        return None
    warnings = billing_warnings(account)
    return warnings[0] if warnings else None


def subscription_of(account: Account) -> Subscription | None:
    return Subscription.objects.filter(account=account).first()


def account_by_customer(customer_id: str) -> Account | None:
    if not customer_id:
        return None
    return Account.objects.filter(subscription__stripe_customer_id=customer_id).first()


def seat_ledger_list(account: Account):
    return SeatLedgerEntry.objects.filter(account=account).order_by("-occurred")


def deployments_used(account: Account) -> int:
    """The account's deployments, counted by the function ``BILLING_DEPLOYMENT_COUNTER`` names
    (orchestration's; billing reads no app above it)."""
    return import_string(settings.BILLING_DEPLOYMENT_COUNTER)(account)


def webhooks_used(account: Account) -> int:
    """The account's incoming webhooks, counted by the function ``BILLING_WEBHOOK_COUNTER`` names."""
    return import_string(settings.BILLING_WEBHOOK_COUNTER)(account)


def plan_change_problems(account: Account, plan_key: str, *, limits: dict | None = None) -> list[str]:
    """What must change before ``account`` fits ``plan_key`` (with ``limits``, contract limits in
    place of the account's own): one sentence per limit or feature its use exceeds; empty when it
    fits."""
    plan: Plan = with_contract_limits(get_plan(plan_key), account.plan_limits if limits is None else limits)
    problems = []
    seats = seats_used(account)
    if plan.max_seats is not None and seats > plan.max_seats:
        problems.append(
            f"The {plan.name} plan allows {plan.max_seats} seats; this account uses {seats} "
            f"(members and pending invitations): remove {seats - plan.max_seats}."
        )
    workspaces = account.workspaces.count()
    if plan.max_workspaces is not None and workspaces > plan.max_workspaces:
        problems.append(
            f"The {plan.name} plan allows {plan.max_workspaces} workspaces; this account has {workspaces}: "
            f"delete {workspaces - plan.max_workspaces}."
        )
    if plan.max_deployments is not None:
        deployments = deployments_used(account)
        if deployments > plan.max_deployments:
            problems.append(
                f"The {plan.name} plan allows {plan.max_deployments} deployments; this account has "
                f"{deployments}: delete {deployments - plan.max_deployments}."
            )
    if plan.max_webhooks is not None:
        webhooks = webhooks_used(account)
        if webhooks > plan.max_webhooks:
            problems.append(
                f"The {plan.name} plan allows {plan.max_webhooks} incoming webhooks; this account has "
                f"{webhooks}: delete {webhooks - plan.max_webhooks}."
            )
    in_use = features_in_use(account)
    for feature in sorted(in_use - plan.features):
        problems.append(
            f"The {plan.name} plan does not include {feature.replace('_', ' ')}, which this account uses: "
            "turn it off first."
        )
    return problems


def features_in_use(account: Account) -> set[str]:
    """Features the account has switched on, found through reverse relations (billing imports no
    app above it)."""
    used: set[str] = set()
    relations = {
        "sso": "identity_providers",
        "scim": "scim_tokens",
        "service_accounts": "service_accounts",
        "custom_roles": "custom_roles",
        "teams": "teams",
    }
    for feature, relation in relations.items():
        rows = getattr(account, relation).all()
        if feature == "scim":
            rows = rows.filter(revoked_at__isnull=True)
        if rows.exists():
            used.add(feature)
    if (account.settings or {}).get("enforce_ip_allowlist"):
        used.add("ip_allowlist")
    return used


def next_invoice_at(subscription: Subscription | None) -> dt.datetime | None:
    """When Stripe invoices next: the end of the current period, unless the subscription ends then
    (cancelled at period end) or has ended."""
    if subscription is None or not subscription.stripe_subscription_id or not subscription.current_period_end:
        return None
    if subscription.cancel_at_period_end or subscription.stripe_status in ENDED:
        return None
    return subscription.current_period_end


def billing_summary(account: Account) -> dict:
    """What ``GET /api/accounts/<id>/billing`` answers: plan, status, seats bought and used,
    limits and usage against them, the next invoice date, warnings."""
    plan = plan_for(account)
    subscription = subscription_of(account)
    used = {
        "seats": seats_used(account),
        "workspaces": account.workspaces.count(),
        "deployments": deployments_used(account),
    }
    limits = {"seats": plan.max_seats, "workspaces": plan.max_workspaces, "deployments": plan.max_deployments}
    return {
        "plan": plan.key,
        "plan_name": plan.name,
        "status": account.billing_status,
        "phase": billing_phase(account),
        "grace_until": grace_until(account),
        "suspended_from": suspended_from(account),
        "pending_plan": (subscription.pending_plan or None) if subscription else None,
        "stripe_status": (subscription.stripe_status or None) if subscription else None,
        "seats_billed": subscription.seats_billed if subscription else None,
        "seats_high_water": subscription.seats_high_water if subscription else None,
        "seats_used": used["seats"],
        "limits": limits,
        "usage": used,
        "features": sorted(plan.features),
        "next_invoice_at": next_invoice_at(subscription),
        "cancel_at_period_end": bool(subscription and subscription.cancel_at_period_end),
        "read_only_reason": (subscription.read_only_reason or None) if subscription else None,
        "warnings": billing_warnings(account),
    }
