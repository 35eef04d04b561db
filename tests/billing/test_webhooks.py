"""Stripe webhooks at ``/billing/stripe/webhook``, built and signed here (``t=…,v1=HMAC-SHA256``),
against localstripe (see conftest for the little it fakes): signature and tolerance, each event
stored once, processed after commit, order-independent; checkout to paid plan; dunning (payment
failed → grace → new work refused → suspended → paid → active at once); cancellation."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import Team
from accounts.permissions import AccountRole
from accounts.services import membership_add, membership_remove
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from billing import selectors, services
from billing.models import SeatLedgerEntry, StripeEvent, Subscription
from orchestration.models import Webhook
from tenants.models import Account
from tests.billing.conftest import URL, checkout_paid, deliver, event, signed, start_checkout
from tests.factories import AccountFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_account(db):
    account = AccountFactory(plan="hobby")
    owner = UserFactory()
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    return account, owner


class TestSignature:
    def test_a_bad_signature_is_400_and_changes_nothing(self, client, stripe_fake, owner_account):
        account, _ = owner_account
        payload = event("customer.subscription.updated", {"id": "sub_x", "customer": "cus_x"})
        response = deliver(client, payload, secret="whsec_someone_else")
        assert response.status_code == 400
        assert response.json()["code"] == "bad_signature"
        assert not StripeEvent.objects.exists()
        response = client.post(URL, data=b"{}", content_type="application/json")
        assert response.status_code == 400
        assert not StripeEvent.objects.exists()

    def test_a_stale_timestamp_is_400(self, client, stripe_fake):
        payload = event("invoice.paid", {"id": "in_x", "customer": "cus_x"})
        response = deliver(client, payload, timestamp=int(time.time()) - 301)
        assert response.status_code == 400
        assert not StripeEvent.objects.exists()

    def test_within_the_tolerance_is_accepted(self, client, stripe_fake):
        payload = event("invoice.paid", {"id": "in_x", "customer": "cus_nobody"})
        assert deliver(client, payload, timestamp=int(time.time()) - 200).status_code == 200
        assert StripeEvent.objects.filter(pk=payload["id"]).exists()

    def test_without_stripe_settings_the_endpoint_does_not_exist(self, client, db):
        with override_settings(STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET=""):
            body, header = signed(event("invoice.paid", {}))
            response = client.post(
                URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
            )
        assert response.status_code == 404
        assert not StripeEvent.objects.exists()

    def test_get_is_not_served(self, client, stripe_fake):
        assert client.get(URL).status_code == 405


class TestCheckout:
    def test_the_account_stays_on_its_plan_pending_until_the_webhook(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        MembershipFactory(account=account, role=AccountRole.MEMBER)
        response = start_checkout(client, account, owner, "team")
        assert response.status_code == 201
        assert response.json()["url"].startswith("https://checkout.stripe.test/")
        session = stripe_fake.checkout_sessions[-1]
        assert session["line_items"] == [{"price": "price_team_seat", "quantity": 2}]
        assert session["client_reference_id"] == str(account.id)
        account.refresh_from_db()
        assert account.plan == "hobby"
        summary = client.get(f"/api/accounts/{account.id}/billing").json()
        assert summary["plan"] == "hobby" and summary["pending_plan"] == "team"
        page = client.get(f"/billing/accounts/{account.id}/return?checkout=success")
        assert page.status_code == 200
        assert b"pending" in page.content and b'http-equiv="refresh"' in page.content
        # Every write to Stripe carried an idempotency key (customer, session).
        assert len(stripe_fake.idempotency_keys) == 2
        started = AuditLogEntry.objects.get(account_ref=account.id, api_name="billing.checkout-started")
        assert started.payload["plan"] == "team" and started.payload["seats"] == 2

        subscription = stripe_fake.complete_checkout(session)
        completed = {**session, "status": "complete", "subscription": subscription["id"]}
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, event("checkout.session.completed", completed)).status_code == 200
        account.refresh_from_db()
        assert account.plan == "team"
        stored = Subscription.objects.get(account=account)
        assert stored.stripe_subscription_id == subscription["id"]
        assert stored.stripe_customer_id == session["customer"]
        assert stored.stripe_status == "active" and stored.pending_plan == ""
        assert stored.seats_billed == 2
        assert (
            AuditLogEntry.objects.filter(account_ref=account.id, api_name="billing.plan-changed").count() == 1
        )
        page = client.get(f"/billing/accounts/{account.id}/return")
        assert b"Team plan" in page.content and b"refresh" not in page.content
        summary = client.get(f"/api/accounts/{account.id}/billing").json()
        assert summary["seats_billed"] == 2 and summary["next_invoice_at"] is not None

    def test_an_expired_checkout_ends_the_pending_upgrade_but_not_a_later_one(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        """The person cancelled (or left) Checkout and Stripe expired the session: the upgrade is no
        longer pending. An expired older session leaves a later Checkout pending."""
        account, owner = owner_account
        assert start_checkout(client, account, owner, "team").status_code == 201
        session = stripe_fake.checkout_sessions[-1]
        started = Subscription.objects.get(account=account).pending_since
        older = {**session, "status": "expired", "created": int(started.timestamp()) - 3600}
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, event("checkout.session.expired", older)).status_code == 200
        assert Subscription.objects.get(account=account).pending_plan == "team"

        expired = {**session, "status": "expired", "created": int(started.timestamp())}
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, event("checkout.session.expired", expired)).status_code == 200
        state = Subscription.objects.get(account=account)
        assert (state.pending_plan, state.pending_since) == ("", None)
        account.refresh_from_db()
        assert account.plan == "hobby"
        assert client.get(f"/api/accounts/{account.id}/billing").json()["pending_plan"] is None
        assert all(e.processed for e in StripeEvent.objects.filter(type="checkout.session.expired"))

    def test_back_from_a_cancelled_checkout_the_page_says_nothing_changed(
        self, client, stripe_fake, owner_account
    ):
        account, owner = owner_account
        assert start_checkout(client, account, owner, "team").status_code == 201
        page = client.get(f"/billing/accounts/{account.id}/return?checkout=cancelled")
        assert page.status_code == 200
        assert b"Checkout was cancelled; nothing changed" in page.content
        assert b"pending" not in page.content and b'http-equiv="refresh"' not in page.content

    def test_a_plan_the_account_does_not_fit_is_refused_before_stripe_is_called(
        self, client, stripe_fake, owner_account
    ):
        account, owner = owner_account
        for _ in range(3):
            MembershipFactory(account=account, role=AccountRole.MEMBER)  # 4 seats (made by an operator)
        response = start_checkout(client, account, owner, "starter")
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "plan_does_not_fit"
        assert "remove 1" in body["detail"]
        assert stripe_fake.idempotency_keys == [] and stripe_fake.checkout_sessions == []
        assert not Subscription.objects.filter(account=account).exists()

    def test_more_incoming_webhooks_than_the_plan_allows_are_named(self, client, stripe_fake, owner_account):
        account, owner = owner_account
        workspace = WorkspaceFactory(account=account)
        for n in range(6):  # made by an operator, past the Hobby plan's one
            Webhook.objects.unscoped().create(
                workspace=workspace, name=f"hook {n}", template="{}", slug=f"s{n}"
            )
        response = start_checkout(client, account, owner, "starter")
        assert response.status_code == 409
        assert (
            "allows 5 incoming webhooks" in response.json()["detail"]
            and "delete 1" in response.json()["detail"]
        )
        Webhook.objects.unscoped().filter(slug="s0").delete()
        assert start_checkout(client, account, owner, "starter").status_code == 201

    def test_features_in_use_that_the_plan_lacks_are_named(self, client, stripe_fake, owner_account):
        account, owner = owner_account
        Team.objects.create(account=account, name="Data")
        account.settings = {"enforce_ip_allowlist": True}
        account.save(update_fields=["settings"])
        response = start_checkout(client, account, owner, "team")
        assert response.status_code == 409
        problems = response.json()["problems"]
        assert len(problems) == 2
        assert "include teams" in problems[1] and "ip allowlist" in problems[0]
        assert stripe_fake.idempotency_keys == []

    def test_enterprise_is_not_sold_here(self, client, stripe_fake, owner_account):
        account, owner = owner_account
        response = start_checkout(client, account, owner, "enterprise")
        assert response.status_code == 422
        assert response.json()["code"] == "plan_not_offered"

    def test_the_portal_link(self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks):
        account, owner = owner_account
        checkout_paid(client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks)
        response = client.post(f"/api/accounts/{account.id}/billing/portal")
        assert response.status_code == 201
        assert response.json()["url"].startswith("https://billing.stripe.test/")
        assert (
            stripe_fake.portal_sessions[-1]["customer"]
            == Subscription.objects.get(account=account).stripe_customer_id
        )


class TestDelivery:
    def test_a_replay_is_a_no_op(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        subscription = checkout_paid(
            client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
        )
        payload = event(
            "customer.subscription.updated", {"id": subscription["id"], "customer": subscription["customer"]}
        )
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            first = deliver(client, payload)
        assert first.json() == {"received": True, "duplicate": False}
        assert len(callbacks) == 1
        audit_before = AuditLogEntry.objects.count()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            again = deliver(client, payload)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert callbacks == []
        assert StripeEvent.objects.filter(pk=payload["id"]).count() == 1
        assert AuditLogEntry.objects.count() == audit_before

    def test_updated_before_created_before_checkout_ends_the_same(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        start_checkout(client, account, owner, "team")
        session = stripe_fake.checkout_sessions[-1]
        subscription = stripe_fake.complete_checkout(session)
        stub = {"id": subscription["id"], "customer": subscription["customer"], "status": "incomplete"}
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, event("customer.subscription.updated", stub))
            deliver(client, event("customer.subscription.created", stub))
        account.refresh_from_db()
        # The stale "incomplete" in the payloads did not matter: the subscription was re-read.
        assert account.plan == "team"
        state = Subscription.objects.get(account=account)
        assert (state.stripe_subscription_id, state.stripe_status) == (subscription["id"], "active")
        with django_capture_on_commit_callbacks(execute=True):
            deliver(
                client, event("checkout.session.completed", {**session, "subscription": subscription["id"]})
            )
        account.refresh_from_db()
        assert account.plan == "team" and account.billing_status == "active"
        assert Subscription.objects.get(account=account).pending_plan == ""

    def test_paid_before_failed_stays_paid(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        subscription = checkout_paid(
            client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
        )
        invoice = {"id": "in_1", "customer": subscription["customer"], "subscription": subscription["id"]}
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, event("invoice.paid", invoice))
            deliver(client, event("invoice.payment_failed", invoice))  # late: Stripe says active now
        account.refresh_from_db()
        assert account.billing_status == "active"
        assert not AuditLogEntry.objects.filter(
            account_ref=account.id, api_name="billing.payment-failed"
        ).exists()

    def test_an_event_of_no_known_customer_is_stored_and_changes_nothing(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, _ = owner_account
        payload = event(
            "invoice.payment_failed", {"id": "in_1", "customer": "cus_unknown", "subscription": "sub_x"}
        )
        before = AuditLogEntry.objects.count()
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload).status_code == 200
        stored = StripeEvent.objects.get(pk=payload["id"])
        assert stored.processed is not None and stored.account is None
        account.refresh_from_db()
        assert account.billing_status == "active"
        assert AuditLogEntry.objects.count() == before


class TestDunning:
    def test_failed_grace_restricted_suspended_then_paid(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        subscription = checkout_paid(
            client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
        )
        invoice = {"id": "in_2", "customer": subscription["customer"], "subscription": subscription["id"]}
        stripe_fake.status_override[subscription["id"]] = "past_due"
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, event("invoice.payment_failed", invoice))
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("team", "past_due")
        assert selectors.billing_phase(account) == "grace"
        assert selectors.new_work_refusal(account) is None
        summary = client.get(f"/api/accounts/{account.id}/billing").json()
        assert summary["phase"] == "grace" and summary["warnings"] and summary["grace_until"]
        assert (
            AuditLogEntry.objects.filter(account_ref=account.id, api_name="billing.payment-failed").count()
            == 1
        )
        changed = AuditLogEntry.objects.get(account_ref=account.id, api_name="billing.status-changed")
        assert changed.payload == {"status": "past_due", "old_status": "active"}

        # After the grace period: new work is refused, governance is not.
        Account.objects.filter(pk=account.pk).update(
            billing_status_since=timezone.now() - dt.timedelta(days=8)
        )
        account.refresh_from_db()
        assert selectors.billing_phase(account) == "restricted"
        assert selectors.new_work_refusal(account) is not None
        assert client.get(f"/api/accounts/{account.id}/billing").status_code == 200
        assert client.get(f"/api/accounts/{account.id}").status_code == 200

        Account.objects.filter(pk=account.pk).update(
            billing_status_since=timezone.now() - dt.timedelta(days=22)
        )
        account.refresh_from_db()
        assert selectors.billing_phase(account) == "suspended"

        # Paying brings it back at once; a replayed failure changes nothing.
        stripe_fake.status_override.pop(subscription["id"])
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, event("invoice.paid", invoice))
        account.refresh_from_db()
        assert account.billing_status == "active" and selectors.billing_phase(account) == "active"
        assert (
            AuditLogEntry.objects.filter(account_ref=account.id, api_name="billing.payment-succeeded").count()
            == 1
        )
        assert account.plan == "team"


def test_payment_action_required_is_recorded_and_changes_nothing_else(
    client, stripe_fake, owner_account, django_capture_on_commit_callbacks
):
    account, owner = owner_account
    subscription = checkout_paid(
        client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
    )
    invoice = {"id": "in_3", "customer": subscription["customer"], "subscription": subscription["id"]}
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, event("invoice.payment_action_required", invoice))
    entry = AuditLogEntry.objects.get(account_ref=account.id, api_name="billing.payment-action-required")
    assert entry.payload["invoice"] == "in_3"
    account.refresh_from_db()
    assert (account.plan, account.billing_status) == ("team", "active")


def _end(client, stripe_fake, subscription, *, capture):
    """The subscription ends in Stripe, and Stripe says so."""
    stripe_fake.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    ended = {"id": subscription["id"], "customer": subscription["customer"]}
    with capture(execute=True):
        deliver(client, event("customer.subscription.deleted", ended))


class TestCancellation:
    def test_a_cancellation_drops_to_hobby_when_the_account_fits(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        subscription = checkout_paid(
            client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
        )
        _end(client, stripe_fake, subscription, capture=django_capture_on_commit_callbacks)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("hobby", "active")

    def test_a_cancellation_the_account_does_not_fit_goes_read_only_with_the_reason(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        account, owner = owner_account
        subscription = checkout_paid(
            client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
        )
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                membership_add(account=account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM)
        _end(client, stripe_fake, subscription, capture=django_capture_on_commit_callbacks)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("team", "read_only")
        reason = Subscription.objects.get(account=account).read_only_reason
        assert "Hobby plan allows 2 seats" in reason and "remove 2" in reason
        assert selectors.new_work_refusal(account) is not None
        # Freeing what it must brings it to Hobby, at the seat change that makes it fit.
        first, second = account.memberships.filter(role=AccountRole.MEMBER)[:2]
        membership_remove(membership=first, actor=owner)
        account.refresh_from_db()
        assert account.billing_status == "read_only"
        membership_remove(membership=second, actor=owner)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("hobby", "active")
        assert not services.read_only_recheck(account=account, actor=owner)  # nothing left to do
        assert SeatLedgerEntry.objects.filter(account=account).exists()


class TestCancellationAtPeriodEnd:
    """Cancelled in the portal "at period end": Stripe keeps the subscription active and says
    ``cancel_at_period_end``; the plan stays, the summary warns when it ends and has no next
    invoice; the ``deleted`` that comes at the period's end applies the cancellation."""

    def _cancel_at_period_end(self, client, stripe_fake, subscription, *, capture) -> dt.datetime:
        remote = stripe_fake.call(
            "POST", f"/v1/subscriptions/{subscription['id']}", cancel_at_period_end="true"
        )
        assert remote["cancel_at_period_end"] is True and remote["status"] == "active"
        updated = {
            "id": subscription["id"],
            "customer": subscription["customer"],
            "cancel_at_period_end": True,
        }
        with capture(execute=True):
            assert deliver(client, event("customer.subscription.updated", updated)).status_code == 200
        return dt.datetime.fromtimestamp(remote["current_period_end"], tz=dt.UTC)

    def _summary(self, client, account) -> dict:
        response = client.get(f"/api/accounts/{account.id}/billing")
        assert response.status_code == 200
        return response.json()

    def test_the_plan_stays_with_a_warning_until_the_end_then_hobby(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        capture = django_capture_on_commit_callbacks
        account, owner = owner_account
        subscription = checkout_paid(client, stripe_fake, account, owner, capture=capture)
        before = self._summary(client, account)
        assert before["next_invoice_at"] and not before["cancel_at_period_end"] and before["warnings"] == []

        ends = self._cancel_at_period_end(client, stripe_fake, subscription, capture=capture)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("team", "active")
        summary = self._summary(client, account)
        assert (summary["plan"], summary["status"], summary["cancel_at_period_end"]) == (
            "team",
            "active",
            True,
        )
        # Nothing more will be invoiced: no next invoice date.
        assert summary["next_invoice_at"] is None
        assert summary["warnings"] == [
            f"The subscription ends on {ends:%Y-%m-%d}. The account fits the Hobby plan and moves to it then."
        ]
        assert Subscription.objects.get(account=account).current_period_end == ends

        _end(client, stripe_fake, subscription, capture=capture)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("hobby", "active")
        summary = self._summary(client, account)
        assert summary["warnings"] == [] and summary["next_invoice_at"] is None

    def test_an_account_that_does_not_fit_is_warned_then_goes_read_only(
        self, client, stripe_fake, owner_account, django_capture_on_commit_callbacks
    ):
        capture = django_capture_on_commit_callbacks
        account, owner = owner_account
        subscription = checkout_paid(client, stripe_fake, account, owner, capture=capture)
        for _ in range(2):
            with capture(execute=True):
                membership_add(account=account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM)
        ends = self._cancel_at_period_end(client, stripe_fake, subscription, capture=capture)
        [warning] = self._summary(client, account)["warnings"]
        assert warning.startswith(
            f"The subscription ends on {ends:%Y-%m-%d}. The account does not fit the Hobby plan and will "
            "become read-only unless it changes: The Hobby plan allows 2 seats; this account uses 3"
        )
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("team", "active")

        _end(client, stripe_fake, subscription, capture=capture)
        account.refresh_from_db()
        assert (account.plan, account.billing_status) == ("team", "read_only")
        summary = self._summary(client, account)
        assert "remove 1" in summary["read_only_reason"] and summary["phase"] == "read_only"


def test_an_event_whose_task_was_lost_is_processed_by_the_sweep(
    client, stripe_fake, owner_account, django_capture_on_commit_callbacks
):
    account, owner = owner_account
    subscription = checkout_paid(
        client, stripe_fake, account, owner, capture=django_capture_on_commit_callbacks
    )
    stripe_fake.status_override[subscription["id"]] = "past_due"
    payload = event(
        "invoice.payment_failed",
        {"id": "in_4", "customer": subscription["customer"], "subscription": subscription["id"]},
    )
    deliver(client, payload)  # stored; its after-commit task never ran
    later = timezone.now() + dt.timedelta(minutes=6)
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9"):  # Stripe unreachable
        assert services.stripe_events_pending_process(now=later) == 0
    stored = StripeEvent.objects.get(pk=payload["id"])
    assert stored.processed is None and "unavailable" in stored.error
    account.refresh_from_db()
    assert account.billing_status == "active"
    assert services.stripe_events_pending_process(now=timezone.now()) == 0  # not yet due
    assert services.stripe_events_pending_process(now=later) == 1
    account.refresh_from_db()
    assert account.billing_status == "past_due"
    assert StripeEvent.objects.get(pk=payload["id"]).processed is not None
