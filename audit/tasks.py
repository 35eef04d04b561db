from __future__ import annotations

from celery import shared_task

from audit.services import audit_purge_expired


@shared_task(name="audit.tasks.purge_expired_audit_records")
def purge_expired_audit_records() -> int:
    """The audit log, past each account's retention."""
    return audit_purge_expired()
