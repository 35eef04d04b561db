"""Rate limits by plan, in Prefect Cloud's two buckets, charged at the gate once the account is
known: **API requests** (every call to a workspace's API, each ``set_state`` one) and **logs +
events** (each log and each event written, not each batch). Over the limit is a 429 with
``Retry-After`` (seconds until the minute turns), which the ``prefect`` client honours and retries.

The limits are the plan's (``billing.plans``) times ``RATE_LIMIT_SCALE`` (``0`` turns them off);
the counters are ``core.ratelimit``'s, shared through Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import enum

from django.conf import settings
from rest_framework.exceptions import Throttled

from billing.plans import get_plan, with_contract_limits
from core.ratelimit import limiter


class Bucket(enum.StrEnum):
    API = "api"
    LOGS_EVENTS = "logs-events"


class RateLimited(Throttled):
    default_detail = "The account's rate limit is reached."


def _limit(account, bucket: Bucket) -> int | None:
    return limit_of(account.plan, bucket, account.plan_limits)


def limit_of(plan_key: str, bucket: Bucket, plan_limits: dict | None = None) -> int | None:
    """The per-minute limit of ``bucket`` on the plan ``plan_key`` (with an account's contract
    limits, ``plan_limits``); None when limits are off."""
    scale = settings.RATE_LIMIT_SCALE
    if scale <= 0:
        return None
    plan = with_contract_limits(get_plan(plan_key), plan_limits)
    per_minute = plan.api_requests_per_minute if bucket is Bucket.API else plan.logs_events_per_minute
    return max(1, int(per_minute * scale))


def _batch(limit: int) -> int:
    # Units a process reserves from Redis at once: one round trip per this many requests, and at
    # most this many less than the limit for an account each minute.
    return max(1, min(50, limit // 100))


def retry_after_of(account, bucket: Bucket, amount: int = 1) -> int | None:
    """Charge ``amount`` to ``account``'s ``bucket``: None when allowed, else the seconds to wait."""
    return retry_after_for(
        account_id=account.pk,
        plan=account.plan,
        plan_limits=account.plan_limits,
        bucket=bucket,
        amount=amount,
    )


def retry_after_for(
    *, account_id, plan: str, bucket: Bucket, amount: int = 1, plan_limits: dict | None = None
) -> int | None:
    """``retry_after_of`` by the account's id, plan and contract limits (what a websocket's grant
    holds)."""
    limit = limit_of(plan, bucket, plan_limits)
    if limit is None:
        return None
    # A batch larger than a whole minute's allowance costs the whole minute (it would never fit).
    amount = min(amount, limit)
    verdict = limiter().charge(f"{bucket}:{account_id}", limit=limit, amount=amount, batch=_batch(limit))
    return None if verdict.allowed else verdict.retry_after


def charge(account, bucket: Bucket, amount: int = 1) -> None:
    """``retry_after_of`` as DRF's 429 (``Retry-After`` rides on it, ``core.errors``)."""
    wait = retry_after_of(account, bucket, amount)
    if wait is not None:
        raise RateLimited(
            detail=f"The account's rate limit of {_limit(account, bucket)} {_what(bucket)} a minute is "
            f"reached; retry in {wait} seconds.",
            wait=wait,
        )


def charge_from_memory(account, bucket: Bucket, amount: int = 1) -> bool:
    """True when the charge was made without I/O (the worker poll's fast path); False when the
    full path must charge (it may still allow)."""
    limit = _limit(account, bucket)
    if limit is None:
        return True
    return bool(limiter().charge_from_memory(f"{bucket}:{account.pk}", limit=limit, amount=amount))


def _what(bucket: Bucket) -> str:
    return "requests" if bucket is Bucket.API else "logs and events"
