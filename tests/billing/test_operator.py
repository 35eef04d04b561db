"""The operator's doors: the admin changes a plan only when the account fits it, and shows billing."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site

from accounts.admin import AccountAdminForm
from accounts.permissions import AccountRole
from billing.models import SeatLedgerEntry, StripeEvent, Subscription
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
