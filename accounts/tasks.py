from __future__ import annotations

from celery import shared_task


@shared_task(name="accounts.tasks.purge_expired_sso_state")
def purge_expired_sso_state() -> int:
    from accounts.sso.housekeeping import sso_purge_expired

    return sso_purge_expired()
