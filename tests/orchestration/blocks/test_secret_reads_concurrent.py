"""Secret reads are audited without waiting on the account's audit chain: concurrent reads do not
queue behind its lock, and their records join the chain once it is free."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from audit import events
from audit.actors import SYSTEM
from audit.models import AuditChain, AuditLogEntry, AuditPendingEntry
from audit.services import audit_chain_pending, audit_record, audit_verify_chain

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_secret_reads_do_not_wait_on_the_chain_lock(tenant, dev):
    """Another transaction holds the account's chain head locked (as a long audited write would);
    secret reads still answer at once, and their records join once it lets go."""
    p = tenant.prefix
    block_type = dev.post(f"{p}/block_types/", {"name": "Creds", "slug": "creds"}, format="json").json()
    fields = {
        "title": "Creds",
        "type": "object",
        "properties": {"password": {"type": "string", "format": "password"}},
        "secret_fields": ["password"],
        "block_type_slug": "creds",
    }
    schema = dev.post(
        f"{p}/block_schemas/", {"block_type_id": block_type["id"], "fields": fields}, format="json"
    ).json()
    doc = dev.post(
        f"{p}/block_documents/",
        {
            "name": "prod",
            "block_type_id": block_type["id"],
            "block_schema_id": schema["id"],
            "data": {"password": "hunter2"},
        },  # fmt: skip
        format="json",
    ).json()
    audit_record(event=events.API_KEY_CREATED, actor=SYSTEM, account=tenant.account)  # the head exists
    locked, release = threading.Event(), threading.Event()

    def hold_the_chain():
        try:
            with transaction.atomic():
                AuditChain.objects.select_for_update().get(pk=tenant.account.pk)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_chain)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting on the lock would fail the read
        for _ in range(3):
            answer = dev.get(f"{p}/block_documents/{doc['id']}?include_secrets=true")
            assert answer.status_code == 200 and answer.json()["data"]["password"] == "hunter2"
        assert AuditPendingEntry.objects.filter(chain=tenant.account.pk).count() == 3
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert audit_chain_pending(chain=tenant.account.pk) == 3
    assert AuditLogEntry.objects.filter(event_id=events.BLOCK_SECRETS_READ.id).count() == 3
    assert audit_verify_chain(tenant.account.pk).ok
