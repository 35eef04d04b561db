from __future__ import annotations

from celery import shared_task

from audit.services import audit_purge_expired


@shared_task(name="audit.tasks.purge_expired_audit_records")
def purge_expired_audit_records() -> int:
    """The audit log and the SCIM journal, each past its account's retention."""
    from accounts.scim.services import scim_activity_purge_expired

    return audit_purge_expired() + scim_activity_purge_expired()
