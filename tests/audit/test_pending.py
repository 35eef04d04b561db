"""Records written without waiting on their chain (``audit_record_pending``, reads of secrets):
durable at once, joining the chain in the order written with the same id and fields, never lost nor
twice there, and on PostgreSQL a pending row can be neither changed nor dropped before it joined."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import events
from audit.actors import SYSTEM
from audit.models import AuditChain, AuditLogEntry, AuditPendingEntry
from audit.services import audit_chain_pending, audit_record, audit_record_pending, audit_verify_chain
from tests.accounts.test_account_api import make_org

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the database guard and row locks are PostgreSQL's"
)


def _record(org, n, pending=True):
    write = audit_record_pending if pending else audit_record
    return write(event=events.API_KEY_CREATED, actor=SYSTEM, account=org.account, payload={"n": n, "x": 1e16})


def test_pending_records_join_the_chain_in_order_with_their_fields():
    org, other = make_org(), make_org()
    _record(org, 1, pending=False)
    pending = [_record(org, n) for n in (2, 3, 4)]
    _record(other, 1)
    assert AuditPendingEntry.objects.count() == 4
    assert audit_chain_pending(chain=org.account.pk) == 3
    assert AuditPendingEntry.objects.filter(chain=other.account.pk).count() == 1  # another chain
    entries = list(AuditLogEntry.objects.filter(chain=org.account.pk, sequence__gt=0).order_by("sequence"))
    assert [e.payload.get("n") for e in entries][-4:] == [1, 2, 3, 4]
    assert [e.id for e in entries[-3:]] == [p.entry_id for p in pending]
    joined = entries[-1]
    assert (joined.account_id, joined.actor_kind, joined.api_name) == (
        org.account.pk,
        "system",
        "api-key.created",
    )
    assert joined.occurred.isoformat(timespec="microseconds") == pending[-1].fields["occurred"]
    _record(org, 5, pending=False)  # synchronous records keep chaining after them
    assert audit_verify_chain(org.account.pk).ok
    assert AuditChain.objects.get(pk=org.account.pk).sequence == entries[-1].sequence + 1
    assert audit_chain_pending() == 1 and not AuditPendingEntry.objects.exists()
    assert audit_chain_pending() == 0


def test_a_record_written_in_a_rolled_back_transaction_is_not_kept():
    org = make_org()
    with pytest.raises(RuntimeError), transaction.atomic():
        _record(org, 1)
        raise RuntimeError
    assert audit_chain_pending() == 0


def test_batches_chain_everything_pending():
    org = make_org()
    for n in range(7):
        _record(org, n)
    assert audit_chain_pending(chain=org.account.pk, batch=3) == 7
    assert audit_verify_chain(org.account.pk).ok
    assert not AuditPendingEntry.objects.exists()


@on_postgresql
def test_a_pending_row_is_never_changed_nor_dropped_before_it_joined():
    org = make_org()
    row = _record(org, 1)
    for sql in (
        "UPDATE audit_auditpendingentry SET fields = '{}' WHERE position = %s",
        "DELETE FROM audit_auditpendingentry WHERE position = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="pending audit entries"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [row.position])
    assert audit_chain_pending() == 1  # joining deletes it: the chain now holds the entry
    assert AuditLogEntry.objects.filter(id=row.entry_id).exists()
