"""An invitation holds its seat until its time runs out; then beat marks it expired and the seat's
release is a row of the seat ledger, as every other change of seats is."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts import rbac
from accounts.models import Invitation
from accounts.permissions import AccountRole
from accounts.tasks import expire_invitations
from audit import events
from audit.models import AuditLogEntry
from billing.entitlements import seats_used
from billing.models import Door, SeatLedgerEntry
from core.errors import Conflict
from tests.factories import AccountFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account_and_owner():
    account = AccountFactory(plan="team")
    owner = UserFactory()
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    return account, owner


def _expire(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))


def test_an_expired_invitation_releases_its_seat_in_the_ledger_once(account_and_owner):
    account, owner = account_and_owner
    first, _ = rbac.invitation_create(account=account, email="a@example.com", actor=owner)
    second, _ = rbac.invitation_create(account=account, email="b@example.com", actor=owner)
    assert seats_used(account) == 3
    _expire(first)
    _expire(second)
    other = AccountFactory(plan="team")
    kept, _ = rbac.invitation_create(account=other, email="a@example.com", actor=owner)

    assert expire_invitations.delay().get() == 2
    assert set(Invitation.objects.filter(account=account).values_list("status", flat=True)) == {"EXPIRED"}
    assert Invitation.objects.get(pk=kept.pk).status == "PENDING"
    release = SeatLedgerEntry.objects.filter(account=account).order_by("-occurred", "-pk").first()
    assert (release.seats_before, release.seats_after) == (3, 1)
    assert release.door == Door.INVITATION and "2 invitation(s) expired" in release.reason
    expired_events = AuditLogEntry.objects.filter(account=account, event_id=events.INVITATION_EXPIRED.id)
    assert sorted(entry.payload["email"] for entry in expired_events) == ["a@example.com", "b@example.com"]

    rows = SeatLedgerEntry.objects.count()
    assert rbac.invitations_expire() == 0  # nothing left to expire, nothing written
    assert SeatLedgerEntry.objects.count() == rows


def test_inviting_again_after_expiry_records_the_release_then_the_new_seat(account_and_owner):
    account, owner = account_and_owner
    invitation, token = rbac.invitation_create(account=account, email="a@example.com", actor=owner)
    _expire(invitation)
    again, _ = rbac.invitation_create(account=account, email="A@example.com", actor=owner)
    ledger = list(
        SeatLedgerEntry.objects.filter(account=account)
        .order_by("occurred", "pk")
        .values_list("seats_before", "seats_after")
    )
    assert ledger[-2:] == [(2, 1), (1, 2)]
    assert Invitation.objects.get(pk=invitation.pk).status == "EXPIRED"
    assert again.status == "PENDING"

    invitee = UserFactory(email="a@example.com")
    with pytest.raises(Conflict, match="already been used or revoked"):
        rbac.invitation_accept(invitation_id=invitation.pk, token=token, user=invitee)
