"""``audited_update``: one audit record with the before and after snapshots when the change
changed something (or always, when asked), none when it raised."""

from __future__ import annotations

import pytest

from audit import events
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from audit.services import audited_update
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def _name(account) -> dict:
    return {"name": account.name}


def _entries(account):
    return list(AuditLogEntry.objects.filter(account_ref=account.pk, event_id=events.ACCOUNT_UPDATED.id))


def test_a_change_is_recorded_with_before_and_after():
    account = AccountFactory(name="Old")
    with audited_update(
        instance=account, snapshot=_name, event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=account
    ) as change:
        account.name = "New"
        account.save()
    (entry,) = _entries(account)
    assert entry.payload == {"before": {"name": "Old"}, "after": {"name": "New"}}
    assert change.after == {"name": "New"}
    assert change.entry == entry
    assert entry.target_id == str(account.pk)


def test_no_change_records_nothing_unless_always():
    account = AccountFactory(name="Same")
    with audited_update(
        instance=account, snapshot=_name, event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=account
    ) as change:
        account.save()
    assert change.entry is None
    assert _entries(account) == []
    with audited_update(
        instance=account,
        snapshot=_name,
        event=events.ACCOUNT_UPDATED,
        actor=SYSTEM,
        account=account,
        payload={"first": 1},
        extra={"last": 2},
        always=True,
    ):
        pass
    (entry,) = _entries(account)
    assert entry.payload == {"first": 1, "before": {"name": "Same"}, "after": {"name": "Same"}, "last": 2}


def test_a_block_that_raises_records_nothing():
    account = AccountFactory(name="Old")
    with (
        pytest.raises(RuntimeError),
        audited_update(
            instance=account, snapshot=_name, event=events.ACCOUNT_UPDATED, actor=SYSTEM, account=account
        ),
    ):
        account.name = "New"
        raise RuntimeError
    assert _entries(account) == []


def test_the_event_may_depend_on_the_snapshots():
    account = AccountFactory(name="Old")
    with audited_update(
        instance=account,
        snapshot=_name,
        event=lambda before, after: events.ACCOUNT_UPDATED if before != after else events.ACCOUNT_CREATED,
        actor=SYSTEM,
        account=account,
    ):
        account.name = "New"
    assert len(_entries(account)) == 1
