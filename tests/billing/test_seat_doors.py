"""Seats change through one function (``billing.services.seat_change``) whatever the door: an
invitation sent, revoked or accepted, SSO just-in-time, SCIM provisioning and deprovisioning, the
account API, an operator (the admin, a management command), a reactivation.

Every door refuses the third person on Hobby and the ninth on Team with nothing half-created (no
user, membership, invitation, team link or seat ledger row); each change that goes through is one
ledger row with who, why, the door, the seats before and after. With Stripe (localstripe, see
conftest) the subscription's quantity follows after commit, prorated, and never drops below the
period's high-water mark."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from django.test import override_settings

from accounts import rbac
from accounts.admin import AccountMembershipAdminForm
from accounts.models import AccountMembership, Invitation, ScimUser, TeamMember, User
from accounts.permissions import AccountRole
from accounts.scim.protocol import ScimError
from accounts.scim.services import scim_user_create, scim_user_delete
from accounts.services import membership_add, membership_remove, user_deactivate, user_reactivate
from accounts.sso import pipeline
from accounts.sso.errors import SsoRefused
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from billing.models import SeatLedgerEntry, Subscription
from billing.plans import get_plan
from core.errors import PlanLimitExceeded
from tests.billing.conftest import checkout_paid, deliver, event
from tests.factories import AccountFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def full_account(plan: str):
    """An account on ``plan`` with every seat taken: its Owner and members."""
    account = AccountFactory(plan=plan)
    owner = UserFactory()
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    for _ in range(get_plan(plan).max_seats - 1):
        MembershipFactory(account=account, role=AccountRole.MEMBER)
    return account, owner


def nothing_half_created(account, email: str, *, users_before: int) -> None:
    assert not User.objects.filter(email__iexact=email).exists()
    assert User.objects.count() == users_before
    assert AccountMembership.objects.filter(account=account).count() == get_plan(account.plan).max_seats
    assert not Invitation.objects.filter(account=account).exists()
    assert not ScimUser.objects.filter(account=account).exists()
    assert not TeamMember.objects.filter(team__account=account).exists()
    assert not SeatLedgerEntry.objects.filter(account=account).exists()


PLANS = pytest.mark.parametrize("plan", ["hobby", "team"], ids=["third-on-hobby", "ninth-on-team"])


@PLANS
class TestEveryDoorRefusesThePersonBeyondThePlan:
    def test_invitation_sent(self, plan):
        account, owner = full_account(plan)
        users = User.objects.count()
        with pytest.raises(PlanLimitExceeded):
            rbac.invitation_create(account=account, email="new@corp.example", actor=owner)
        nothing_half_created(account, "new@corp.example", users_before=users)

    def test_account_api(self, plan, client):
        account, owner = full_account(plan)
        users = User.objects.count()
        client.force_login(owner)
        response = client.post(
            f"/api/accounts/{account.id}/invitations/",
            data={"email": "new@corp.example"},
            content_type="application/json",
        )
        assert response.status_code == 403
        assert response.json()["code"] == "seat_limit"
        nothing_half_created(account, "new@corp.example", users_before=users)

    def test_sso_just_in_time(self, plan):
        # The pipeline's seat step (the SSO feature itself is checked earlier, in check_identity).
        account, _ = full_account(plan)
        users = User.objects.count()
        backend = SimpleNamespace(provider=SimpleNamespace(account=account, id="p", name="IdP"))
        with pytest.raises(SsoRefused) as refused:
            pipeline.resolve_user(backend, {"first_name": "New"}, "new@corp.example")
        assert refused.value.reason == "no_seat"
        nothing_half_created(account, "new@corp.example", users_before=users)

    def test_scim_provisioning(self, plan):
        account, _ = full_account(plan)
        users = User.objects.count()
        with pytest.raises(ScimError) as refused:
            scim_user_create(
                account=account,
                data={
                    "userName": "new@corp.example",
                    "active": True,
                    "emails": [{"value": "new@corp.example", "primary": True}],
                },
            )
        assert refused.value.status == 403 and "Nothing was provisioned" in refused.value.detail
        nothing_half_created(account, "new@corp.example", users_before=users)

    def test_operator_admin_and_command(self, plan):
        account, _ = full_account(plan)
        person = UserFactory(email="new@corp.example")
        users = User.objects.count()
        form = AccountMembershipAdminForm(data={"user": person.pk, "account": account.pk, "role": "member"})
        assert not form.is_valid()
        assert "allows" in str(form.errors)
        with pytest.raises(PlanLimitExceeded):
            membership_add(
                account=account, user=person, role=AccountRole.MEMBER, actor=SYSTEM, door="operator"
            )
        assert User.objects.count() == users
        assert not AccountMembership.objects.filter(user=person).exists()
        assert not SeatLedgerEntry.objects.filter(account=account).exists()

    def test_reactivation(self, plan):
        account, owner = full_account(plan)
        leaver = AccountMembership.objects.filter(account=account, role=AccountRole.MEMBER).first().user
        user_deactivate(user=leaver, actor=owner)  # frees a seat
        MembershipFactory(account=account, role=AccountRole.MEMBER)  # taken by someone else
        SeatLedgerEntry.objects.filter(account=account).delete()
        with pytest.raises(PlanLimitExceeded):
            user_reactivate(user=leaver, actor=owner)
        leaver.refresh_from_db()
        assert not leaver.is_active
        assert not SeatLedgerEntry.objects.filter(account=account).exists()


class TestTheLedger:
    def test_each_door_writes_one_row_with_who_why_and_where(self):
        account = AccountFactory(plan="team")
        owner = UserFactory(email="owner@corp.example")
        MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
        invitation, token = rbac.invitation_create(account=account, email="ada@corp.example", actor=owner)
        ada = UserFactory(email="ada@corp.example")
        rbac.invitation_accept(
            invitation_id=invitation.id, token=token, user=ada
        )  # the seat was held: no row
        second, _ = rbac.invitation_create(account=account, email="bob@corp.example", actor=owner)
        rbac.invitation_revoke(invitation=second, actor=owner)
        scim_user = scim_user_create(account=account, data={"userName": "cy@corp.example", "active": True})
        backend = SimpleNamespace(provider=SimpleNamespace(account=account, id="p", name="IdP"))
        pipeline.resolve_user(backend, {}, "dee@corp.example")
        membership_add(
            account=account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM, door="operator"
        )
        scim_user_delete(scim_user=scim_user)
        membership_remove(membership=AccountMembership.objects.get(account=account, user=ada), actor=owner)

        rows = list(SeatLedgerEntry.objects.filter(account=account).order_by("occurred", "seats_before"))
        doors = [(row.door, row.seats_before, row.seats_after) for row in rows]
        assert doors == [
            ("invitation", 1, 2),
            ("invitation", 2, 3),
            ("invitation", 3, 2),
            ("scim", 2, 3),
            ("sso", 3, 4),
            ("operator", 4, 5),
            ("scim", 5, 4),
            ("api", 4, 3),
        ]
        assert rows[0].actor_label == "owner@corp.example" and "ada@corp.example" in rows[0].reason
        assert rows[3].actor_label == "SCIM"
        # Without Stripe nothing is billed, and each row still names its audit event.
        assert {(row.billed_before, row.billed_after) for row in rows} == {(0, 0)}
        records = AuditLogEntry.objects.in_bulk([row.audit_entry_id for row in rows])
        assert len(records) == len(rows)
        for row in rows:
            record = records[row.audit_entry_id]
            assert record.api_name == "billing.seats-changed" and record.account_ref == account.id
            assert (
                record.payload["door"],
                record.payload["seats_before"],
                record.payload["seats_after"],
            ) == (
                row.door,
                row.seats_before,
                row.seats_after,
            )

    def test_owners_and_admins_read_it_members_do_not(self, client):
        account = AccountFactory(plan="team")
        owner, admin, member = UserFactory(), UserFactory(), UserFactory()
        MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
        MembershipFactory(account=account, user=admin, role=AccountRole.ADMIN)
        MembershipFactory(account=account, user=member, role=AccountRole.MEMBER)
        rbac.invitation_create(account=account, email="ada@corp.example", actor=owner)
        for reader in (owner, admin):
            client.force_login(reader)
            rows = client.get(f"/api/accounts/{account.id}/billing/seat_ledger").json()
            assert [(row["door"], row["seats_before"], row["seats_after"]) for row in rows] == [
                ("invitation", 3, 4)
            ]
            assert rows[0]["actor"]["label"] == owner.email and rows[0]["audit_event_id"]
            assert client.get(f"/api/accounts/{account.id}/billing").status_code == 200
        client.force_login(owner)
        summary = client.get(f"/api/accounts/{account.id}/billing").json()
        assert (
            summary["seats_used"] == 4 and summary["limits"]["seats"] == 8 and summary["status"] == "active"
        )
        assert client.get(f"/api/accounts/{account.id}/billing/seat_ledger?limit=x").status_code == 422
        client.force_login(member)
        assert client.get(f"/api/accounts/{account.id}/billing/seat_ledger").status_code == 403
        assert client.get(f"/api/accounts/{account.id}/billing").status_code == 403
        other = AccountFactory()
        client.force_login(owner)
        assert client.get(f"/api/accounts/{other.id}/billing").status_code == 404


class TestQuantityInStripe:
    """Against localstripe: the quantity follows each door, prorated; the high-water mark holds
    within the period; a new period starts from the seats used."""

    def _subscribed(self, client, stripe_fake, capture):
        account = AccountFactory(plan="hobby")
        owner = UserFactory(email="owner@corp.example")
        MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
        subscription = checkout_paid(client, stripe_fake, account, owner, capture=capture)
        account.refresh_from_db()
        return account, owner, subscription

    def _quantity(self, stripe_fake, subscription) -> int:
        return stripe_fake.subscription(subscription["id"])["items"]["data"][0]["quantity"]

    def test_doors_high_water_mark_and_a_new_period(
        self, client, stripe_fake, django_capture_on_commit_callbacks
    ):
        capture = django_capture_on_commit_callbacks
        account, owner, subscription = self._subscribed(client, stripe_fake, capture)
        assert account.plan == "team" and self._quantity(stripe_fake, subscription) == 1
        with capture(execute=True):
            invitation, token = rbac.invitation_create(account=account, email="ada@corp.example", actor=owner)
        assert self._quantity(stripe_fake, subscription) == 2
        ada = UserFactory(email="ada@corp.example")
        with capture(execute=True):
            rbac.invitation_accept(invitation_id=invitation.id, token=token, user=ada)
        with capture(execute=True):
            scim_user = scim_user_create(
                account=account, data={"userName": "cy@corp.example", "active": True}
            )
        assert self._quantity(stripe_fake, subscription) == 3
        backend = SimpleNamespace(provider=SimpleNamespace(account=account, id="p", name="IdP"))
        with capture(execute=True):
            pipeline.resolve_user(backend, {}, "dee@corp.example")
        assert self._quantity(stripe_fake, subscription) == 4
        assert set(stripe_fake.prorations) == {"create_prorations"}

        # Leaving within the period is not a refund: the quantity stays at the high-water mark.
        writes = len(stripe_fake.idempotency_keys)
        with capture(execute=True):
            scim_user_delete(scim_user=scim_user)
            membership_remove(
                membership=AccountMembership.objects.get(account=account, user=ada), actor=owner
            )
        assert len(stripe_fake.idempotency_keys) == writes  # Stripe was not written to
        assert self._quantity(stripe_fake, subscription) == 4
        state = Subscription.objects.get(account=account)
        assert (state.seats_billed, state.seats_high_water) == (4, 4)
        last = SeatLedgerEntry.objects.filter(account=account).order_by("-occurred").first()
        assert (last.seats_before, last.seats_after, last.billed_before, last.billed_after) == (3, 2, 4, 4)
        assert AuditLogEntry.objects.get(pk=last.audit_entry_id).api_name == "billing.seats-changed"
        # Refilling up to the mark costs nothing more.
        with capture(execute=True):
            membership_add(
                account=account, user=UserFactory(), role=AccountRole.MEMBER, actor=SYSTEM, door="operator"
            )
        assert len(stripe_fake.idempotency_keys) == writes and self._quantity(stripe_fake, subscription) == 4

        # A new period (as Stripe reports it on renewal) starts from today's seats.
        Subscription.objects.filter(account=account).update(
            current_period_start=state.current_period_start - dt.timedelta(days=31)
        )
        with capture(execute=True):
            deliver(
                client,
                event(
                    "invoice.paid",
                    {"id": "in_r", "customer": subscription["customer"], "subscription": subscription["id"]},
                ),
            )
        assert self._quantity(stripe_fake, subscription) == 3
        state.refresh_from_db()
        assert (state.seats_billed, state.seats_high_water) == (3, 3)

    def test_synced_rows_are_marked_and_keys_are_distinct(
        self, client, stripe_fake, django_capture_on_commit_callbacks
    ):
        capture = django_capture_on_commit_callbacks
        account, owner, subscription = self._subscribed(client, stripe_fake, capture)
        for email in ("a@corp.example", "b@corp.example"):
            with capture(execute=True):
                rbac.invitation_create(account=account, email=email, actor=owner)
        rows = SeatLedgerEntry.objects.filter(account=account)
        assert rows.count() == 2 and all(row.stripe_synced_at is not None for row in rows)
        seat_keys = [key for key in stripe_fake.idempotency_keys if key.startswith("seats:")]
        assert len(seat_keys) == 2 and len(set(seat_keys)) == 2


def test_without_stripe_nothing_is_called(db):
    with override_settings(STRIPE_SECRET_KEY="", STRIPE_API_BASE="http://127.0.0.1:9"):
        account = AccountFactory(plan="team")
        owner = UserFactory()
        MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
        rbac.invitation_create(account=account, email="x@corp.example", actor=owner)
    [row] = SeatLedgerEntry.objects.filter(account=account)
    assert AuditLogEntry.objects.get(pk=row.audit_entry_id).api_name == "billing.seats-changed"
    assert not Subscription.objects.filter(account=account).exists()
