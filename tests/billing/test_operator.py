"""The operator's doors: the admin changes a plan only when the account fits it, and shows billing."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.sites import site

from accounts.admin import AccountAdminForm
from accounts.permissions import AccountRole
from billing import entitlements
from billing.models import SeatLedgerEntry, StripeEvent, Subscription
from billing.selectors import billing_summary
from core.errors import PlanLimitExceeded
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def _form(account, plan):
    return AccountAdminForm(
        instance=account,
        data={"name": account.name, "handle": account.handle, "plan": plan, "settings": "{}"},
    )


def test_a_plan_the_account_does_not_fit_is_refused_with_what_to_change():
    account = AccountFactory(plan="team")
    for _ in range(4):
        MembershipFactory(account=account, role=AccountRole.MEMBER)
    form = _form(account, "starter")
    assert not form.is_valid()
    assert "allows 3 seats; this account uses 4" in str(form.errors["plan"])
    assert _form(account, "enterprise").is_valid()
    assert _form(account, "team").is_valid()  # unchanged


def test_billing_records_are_in_the_admin_and_read_only(admin_client):
    for model in (Subscription, StripeEvent, SeatLedgerEntry):
        assert model in site._registry
    assert not site._registry[SeatLedgerEntry].has_add_permission(None)
    assert admin_client.get("/admin/billing/seatledgerentry/").status_code == 200
    assert admin_client.get("/admin/billing/subscription/").status_code == 200


def _limits_form(account, plan, limits):
    return AccountAdminForm(
        instance=account,
        data={
            "name": account.name,
            "handle": account.handle,
            "plan": plan,
            "plan_limits": json.dumps(limits),
            "settings": "{}",
        },
    )


def test_an_enterprise_contract_sets_its_own_limits_and_every_door_holds_them():
    account = AccountFactory(plan="enterprise")
    for _ in range(2):
        MembershipFactory(account=account, role=AccountRole.MEMBER)
    form = _limits_form(account, "enterprise", {"max_seats": 3, "audit_log_retention_days": 730})
    assert form.is_valid(), form.errors
    form.save()
    account.refresh_from_db()

    plan = entitlements.plan_for(account)
    assert (plan.max_seats, plan.max_workspaces, plan.audit_log_retention_days) == (3, None, 730)
    assert billing_summary(account)["limits"]["seats"] == 3
    days, longest = entitlements.audit_retention_policy()
    assert days[account.id] == 730 and longest == 730

    assert entitlements.check_seat(account)  # the third seat
    with pytest.raises(PlanLimitExceeded, match="allows 3 seats"):
        entitlements.ensure_seat(account, adding=2)


def test_contract_limits_the_account_does_not_fit_are_refused_with_what_to_change():
    account = AccountFactory(plan="enterprise")
    for _ in range(4):
        MembershipFactory(account=account, role=AccountRole.MEMBER)
    form = _limits_form(account, "enterprise", {"max_seats": 3})
    assert not form.is_valid()
    assert "allows 3 seats; this account uses 4" in str(form.errors["plan_limits"])
    account.refresh_from_db()
    assert account.plan_limits == {}


@pytest.mark.parametrize(
    ("plan", "limits", "message"),
    [
        ("team", {"max_seats": 20}, "self-serve"),
        ("enterprise", {"max_runs": 5}, "Unknown limit"),
        ("enterprise", {"max_seats": 0}, "at least 1"),
        ("enterprise", {"max_seats": "ten"}, "whole number"),
        ("enterprise", {"audit_log_retention_days": None}, "whole number"),
        ("enterprise", [3], "must be an object"),
    ],
)
def test_malformed_or_misplaced_contract_limits_are_refused(plan, limits, message):
    account = AccountFactory(plan=plan)
    form = _limits_form(account, plan, limits)
    assert not form.is_valid()
    assert message in str(form.errors["plan_limits"])


def test_a_self_serve_plan_ignores_limits_left_from_a_contract():
    account = AccountFactory(plan="team", plan_limits={"max_seats": 500})
    assert entitlements.plan_for(account).max_seats == 8


def test_contract_limits_set_the_rate_limits_and_run_retention(settings):
    from access.limits import Bucket, limit_of
    from billing.plans import get_plan, with_contract_limits

    settings.RATE_LIMIT_SCALE = 1
    limits = {"api_requests_per_minute": 20_000, "logs_events_per_minute": 90_000, "run_retention_days": 365}
    form = _limits_form(AccountFactory(plan="enterprise"), "enterprise", limits)
    assert form.is_valid(), form.errors
    assert limit_of("enterprise", Bucket.API, limits) == 20_000
    assert limit_of("enterprise", Bucket.LOGS_EVENTS, limits) == 90_000
    assert limit_of("enterprise", Bucket.API) == 5_000  # the plan's own figure
    assert with_contract_limits(get_plan("enterprise"), limits).run_retention_days == 365
    refused = _limits_form(AccountFactory(plan="enterprise"), "enterprise", {"run_retention_days": None})
    assert not refused.is_valid() and "whole number" in str(refused.errors["plan_limits"])
