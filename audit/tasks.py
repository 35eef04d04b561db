from __future__ import annotations

from celery import shared_task

from audit.services import audit_chain_pending, audit_purge_expired, audit_verify_all_chains


@shared_task(name="audit.tasks.purge_expired_audit_records")
def purge_expired_audit_records() -> int:
    """The audit log, past each account's retention."""
    return audit_purge_expired()


@shared_task(name="audit.tasks.chain_pending_audit_records")
def chain_pending_audit_records() -> int:
    """Pending audit records (reads of secrets), into their chains."""
    return audit_chain_pending()


@shared_task(name="audit.tasks.verify_audit_chains")
def verify_audit_chains() -> int:
    """Every chain walked and checked; the summary is what ``/metrics`` reports. How many are broken."""
    return len(audit_verify_all_chains()["broken"])
