from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from accounts.permissions import AccountRole
from accounts.services import membership_add
from audit.actors import SYSTEM
from billing.models import BillingStatus, SeatLedgerEntry
from tests.billing.conftest import _localstripe_server, stripe_fake  # noqa: F401 - fixtures
from tests.console.conftest import audited, make_org, session, steady_query_count
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class TestBilling:
    def test_plan_seats_usage_ledger_and_offers(self, db):
        org = make_org(plan="hobby")
        html = session(org.admin).get(org.url("billing/")).content.decode()
        assert "Plan: <strong>Hobby</strong>" in html
        assert "Seats: <strong>3</strong> used of <strong>2</strong>" in html
        assert "Move to Team" in html and "Move to Starter" in html and "customer portal" in html
        enterprise = make_org()
        html = session(enterprise.admin).get(enterprise.url("billing/")).content.decode()
        assert "Move to" not in html and "Enterprise is set by sales" in html

    def test_a_member_has_no_billing_page(self, org):
        browser = session(org.member)
        assert "/billing/" not in browser.get(org.url("members/")).content.decode()
        assert browser.get(org.url("billing/")).status_code == 403
        assert browser.post(org.url("billing/checkout"), {"plan": "team"}).status_code == 403

    def test_without_stripe_the_refusal_is_shown_inline(self, db, settings):
        settings.STRIPE_SECRET_KEY = ""
        org = make_org(plan="hobby")
        response = session(org.admin).post(org.url("billing/checkout"), {"plan": "team"})
        assert response.status_code == 422
        assert "Billing through Stripe is not configured here" in response.content.decode()
        response = session(org.admin).post(org.url("billing/portal"))
        assert response.status_code == 422 and "no billing customer yet" in response.content.decode()

    def test_checkout_goes_to_stripe_and_the_plan_is_pending_until_confirmed(self, db, stripe_fake):  # noqa: F811
        org = make_org(plan="hobby")
        browser = session(org.admin)
        response = browser.post(org.url("billing/checkout"), {"plan": "starter"})
        assert response.status_code == 302
        assert response["Location"].startswith("https://checkout.stripe.test/")
        session_sent = stripe_fake.checkout_sessions[-1]
        assert session_sent["success_url"].endswith(org.url("billing/") + "?checkout=success")
        assert len(audited(org.account, "billing.checkout-started")) == 1
        html = browser.get(org.url("billing/?checkout=success")).content.decode()
        assert "The upgrade to the Starter plan is pending" in html and "Plan: <strong>Hobby</strong>" in html
        # Back from a cancelled Checkout, the page says nothing changed rather than "pending".
        html = browser.get(org.url("billing/?checkout=cancelled")).content.decode()
        assert "Checkout was cancelled; nothing changed" in html and "is pending" not in html

    def test_no_per_row_queries(self, org):
        browser = session(org.owner)
        few = steady_query_count(browser, org.url("billing/"))
        for _ in range(6):
            membership_add(account=org.account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM)
        assert SeatLedgerEntry.objects.filter(account=org.account).count() >= 6
        assert steady_query_count(browser, org.url("billing/")) == few


def _standing(account, status: str, *, days: float = 0) -> None:
    """As billing's services save it (the gate's memo of the account follows the save)."""
    account.billing_status = status
    account.billing_status_since = timezone.now() - dt.timedelta(days=days)
    account.save(update_fields=["billing_status", "billing_status_since", "updated"])


BANNER = 'id="billing-banner"'


class TestDunningBanner:
    """The warning of an overdue payment is on every console page of the account, for everyone in
    it: a Member cannot open the billing page but sees why new runs will stop."""

    def test_a_member_sees_it_during_grace_and_after_nobody_does_when_active(self, org):
        pages = ("members/", "workspaces/")
        for person in (org.owner, org.admin, org.member):
            for page in pages:
                assert BANNER not in session(person).get(org.url(page)).content.decode()

        _standing(org.account, BillingStatus.PAST_DUE, days=1)
        member = session(org.member)
        for page in pages:
            html = member.get(org.url(page)).content.decode()
            banner = html.split(BANNER)[1].split("</p>")[0]
            assert "A payment failed. Everything works until" in banner
            assert "/billing/" not in banner  # a Member has no billing page to be sent to
        admin_html = session(org.admin).get(org.url("members/")).content.decode()
        assert f'href="{org.url("billing/")}">Billing</a>' in admin_html.split(BANNER)[1].split("</p>")[0]
        # The billing page says it once, in its own list of warnings.
        billing = session(org.admin).get(org.url("billing/")).content.decode()
        assert BANNER not in billing and billing.count("A payment failed. Everything works until") == 1

        _standing(org.account, BillingStatus.PAST_DUE, days=8)  # restricted
        html = member.get(org.url("members/")).content.decode()
        assert "grace period ended" in html.split(BANNER)[1].split("</p>")[0]

        _standing(org.account, BillingStatus.ACTIVE)  # paid
        for person in (org.owner, org.admin, org.member):
            assert BANNER not in session(person).get(org.url("members/")).content.decode()

    def test_the_banner_costs_no_query(self, org):
        browser = session(org.member)
        active = steady_query_count(browser, org.url("members/"))
        _standing(org.account, BillingStatus.PAST_DUE, days=1)
        assert BANNER in browser.get(org.url("members/")).content.decode()
        assert steady_query_count(browser, org.url("members/")) == active


def meters(html: str) -> dict[str, tuple[int, int]]:
    """Each ``<meter>`` of the usage table: its label, value and max."""
    return {
        label: (int(value), int(most))
        for most, value, label in re.findall(
            r'<meter min="0" max="(\d+)" value="(\d+)" aria-label="([^"]+) used">', html
        )
    }


class TestMetersAndPortal:
    def test_a_meter_per_limit_with_its_value_and_max(self, db):
        from billing.selectors import billing_summary

        org = make_org(plan="team")
        for _ in range(2):
            membership_add(account=org.account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM)
        html = session(org.admin).get(org.url("billing/")).content.decode()
        summary = billing_summary(org.account)
        limited = {what for what in ("seats", "workspaces", "deployments") if summary["limits"][what]}
        assert limited >= {"seats", "workspaces"}
        assert meters(html) == {what: (summary["usage"][what], summary["limits"][what]) for what in limited}
        assert meters(html)["seats"] == (5, 8)
        # An unlimited plan draws no bar and says so.
        enterprise = make_org()
        html = session(enterprise.admin).get(enterprise.url("billing/")).content.decode()
        assert meters(html) == {} and "unlimited" in html

    def test_the_customer_portal_redirect(self, db, stripe_fake):  # noqa: F811
        from billing.models import Subscription

        org = make_org(plan="hobby")
        browser = session(org.owner)
        assert browser.post(org.url("billing/checkout"), {"plan": "starter"}).status_code == 302
        customer = Subscription.objects.get(account=org.account).stripe_customer_id
        assert customer.startswith("cus_")
        response = browser.post(org.url("billing/portal"))
        assert response.status_code == 302
        [portal] = stripe_fake.portal_sessions
        assert response["Location"] == portal["url"] and portal["url"].startswith(
            "https://billing.stripe.test/"
        )
        assert portal["customer"] == customer
        assert portal["return_url"].endswith(org.url("billing/"))
