"""Celery tasks: thin wrappers around billing's services (the Stripe calls that follow a commit)."""

from __future__ import annotations

from celery import shared_task

from billing.services import (
    read_only_accounts_recheck,
    stripe_event_process,
    stripe_events_pending_process,
    subscription_quantity_push,
)
from core.errors import UpstreamUnavailable


@shared_task(
    name="billing.push_seat_quantity",
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=True,
    max_retries=8,
    retry_on_worker_lost=True,  # idempotent: sent again if its pool process is killed under it
    default_retry_delay=2,
)
def push_seat_quantity(account_id: str, entry_id: str = "", cause: str = "") -> bool:
    return subscription_quantity_push(account_id=account_id, entry_id=entry_id, cause=cause)


@shared_task(
    name="billing.process_stripe_event",
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=True,
    max_retries=8,
    retry_on_worker_lost=True,  # idempotent: sent again if its pool process is killed under it
    default_retry_delay=2,
)
def process_stripe_event(event_id: str) -> None:
    stripe_event_process(event_id=event_id)


@shared_task(name="billing.process_pending_stripe_events")
def process_pending_stripe_events() -> int:
    return stripe_events_pending_process()


@shared_task(name="billing.recheck_read_only_accounts")
def recheck_read_only_accounts() -> int:
    return read_only_accounts_recheck()
