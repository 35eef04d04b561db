from __future__ import annotations

from celery import shared_task

from audit.services import audit_chain_pending, audit_purge_expired


@shared_task(name="audit.tasks.purge_expired_audit_records")
def purge_expired_audit_records() -> int:
    """The audit log, past each account's retention."""
    return audit_purge_expired()


@shared_task(name="audit.tasks.chain_pending_audit_records")
def chain_pending_audit_records() -> int:
    """Pending audit records (reads of secrets), into their chains."""
    return audit_chain_pending()
