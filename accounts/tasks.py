from __future__ import annotations

from celery import shared_task

from accounts.rbac import invitations_expire
from accounts.scim.services import scim_activity_purge_expired
from accounts.sso.housekeeping import sso_purge_expired


@shared_task(name="accounts.tasks.purge_expired_sso_state")
def purge_expired_sso_state() -> int:
    return sso_purge_expired()


@shared_task(name="accounts.tasks.purge_expired_scim_activity")
def purge_expired_scim_activity() -> int:
    """The SCIM journal, past each account's audit retention."""
    return scim_activity_purge_expired()


@shared_task(name="accounts.tasks.expire_invitations")
def expire_invitations() -> int:
    """Pending invitations past their time: marked expired, their seats' release in the ledger."""
    return invitations_expire()
