"""Slots and leases of concurrency limits: the arithmetic on locked limit rows that the
concurrency services and the deployment-concurrency rules share (Prefect's
``models/concurrency_limits_v2.py``).

* Slot arithmetic happens with the limit rows locked (``select_for_update``, always in id order,
  leases before limits) inside one transaction, so concurrent increments never oversubscribe a
  limit and decrements are never lost. ``active_slots`` never goes below zero.
* Releasing a lease locks the lease row and deletes it, so two releasers cannot both decrement.
* Slot decay (rate limits): a limit with ``slot_decay_per_second`` frees that many slots per
  second. The decayed value is computed when the row is next written or read; ``updated`` is the
  decay clock and only advances by the time that whole decayed slots account for, so frequent
  callers do not starve the decay.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import AppError, Locked
from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2, Deployment
from tenants.scoping import current_workspace_id

Mode = Literal["concurrency", "rate_limit"]

#: Prefect's server defaults (``PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS`` & co.).
TAG_SLOT_WAIT_SECONDS = 10.0
MAX_SLOT_WAIT_SECONDS = 30.0
DEPLOYMENT_SLOT_WAIT_SECONDS = 30.0
INITIAL_DEPLOYMENT_LEASE_SECONDS = 300.0
#: v1 clients cannot renew leases: their leases (tag slots of task runs) last ~forever.
V1_LEASE_TTL = dt.timedelta(days=100 * 365)
#: Leases of clients that cannot renew them (< 3.4.11) are kept as long.
UNRENEWABLE_LEASE_TTL = V1_LEASE_TTL
MIN_OCCUPANCY_SECONDS_PER_SLOT = 0.1
OCCUPANCY_SAMPLES_MULTIPLIER = 2
TAG_PREFIX = "tag:"
DEPLOYMENT_PREFIX = "deployment:"

LeaseThrough = ConcurrencyLease.limits.through


class SlotsLocked(Locked):
    """No free slot: Prefect's 423 with a ``Retry-After`` (seconds) for the client's backoff."""

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class InvalidSlots(AppError):
    status_code = 422
    default_code = "invalid_slots"


# --- decay -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decayed:
    """A limit's counters as of ``now``, and the decay clock to store with them."""

    active_slots: int
    denied_slots: int
    clock: dt.datetime


def _max_wait(limit: ConcurrencyLimitV2) -> float:
    return TAG_SLOT_WAIT_SECONDS if limit.name.startswith(TAG_PREFIX) else MAX_SLOT_WAIT_SECONDS


def _denied_decay_rate(limit: ConcurrencyLimitV2) -> float:
    """Denied slots decay as fast as slots do for rate limits, else one per (clamped) average
    occupancy, the interval after which a denied caller retries."""
    if limit.slot_decay_per_second > 0:
        return limit.slot_decay_per_second
    occupancy = max(MIN_OCCUPANCY_SECONDS_PER_SLOT, min(limit.avg_slot_occupancy_seconds, _max_wait(limit)))
    return 1.0 / occupancy


def limit_decayed(limit: ConcurrencyLimitV2, now: dt.datetime | None = None) -> Decayed:
    # A caller that read the clock before waiting for the row lock must not move it backwards.
    now = max(now or timezone.now(), limit.updated)
    elapsed = (now - limit.updated).total_seconds()
    active, clock = limit.active_slots, now
    rate = limit.slot_decay_per_second
    if rate > 0:
        drained = math.floor(rate * elapsed)
        if 0 < drained < active:
            active -= drained
            # Keep the fraction of a slot not yet decayed for the next computation.
            clock = limit.updated + dt.timedelta(seconds=drained / rate)
        elif drained >= active:
            active = 0
        else:  # nothing whole decayed yet
            clock = limit.updated
        denied = max(0, limit.denied_slots - drained)
    else:
        denied = max(0, limit.denied_slots - math.floor(_denied_decay_rate(limit) * elapsed))
    return Decayed(active_slots=active, denied_slots=denied, clock=clock)


def limit_write(row: ConcurrencyLimitV2, /, **values: Any) -> None:
    """Store counters with a queryset update (``updated`` is the decay clock, set explicitly)."""
    ConcurrencyLimitV2.objects.filter(id=row.id).update(**values)
    for name, value in values.items():
        setattr(row, name, value)


def limits_lock(**lookup: Any) -> list[ConcurrencyLimitV2]:
    return list(ConcurrencyLimitV2.objects.select_for_update().filter(**lookup).order_by("id"))


def _jitter(average: float) -> float:
    """A retry interval around ``average`` so denied callers do not all come back at once."""
    if average <= 0:
        return 0.0
    return round(average * random.uniform(0.75, 1.25), 3)  # noqa: S311 (jitter, not a secret)


def _retry_after(limits: Sequence[ConcurrencyLimitV2], denied: dict[uuid.UUID, int], slots: int) -> float:
    """Prefect's Retry-After: the limit with the most blocking slots decides, its wait per slot
    capped for concurrency limits."""

    def blocking(limit: ConcurrencyLimitV2) -> float:
        waiting = slots + denied[limit.id]
        return waiting if limit.slot_decay_per_second > 0 else waiting / max(limit.limit, 1)

    worst = max(limits, key=blocking)
    if worst.slot_decay_per_second > 0:
        average = blocking(worst) / worst.slot_decay_per_second
    else:
        max_wait = _max_wait(worst)
        average = min(min(worst.avg_slot_occupancy_seconds, max_wait) * blocking(worst), max_wait)
    return _jitter(average)


# --- slots ---------------------------------------------------------------------------------------


@dataclass
class Acquired:
    """What an increment took: every limit named (inactive ones included, as Prefect answers)
    and, when asked for, the lease on the active ones."""

    limits: list[ConcurrencyLimitV2]
    lease: ConcurrencyLease | None = None
    lease_id: uuid.UUID | None = None


def slots_take(limits: Sequence[ConcurrencyLimitV2], slots: int, now: dt.datetime) -> bool:
    """Take ``slots`` on every limit (locked by the caller) or on none."""
    decayed = {limit.id: limit_decayed(limit, now) for limit in limits}
    if any(decayed[limit.id].active_slots + slots > limit.limit for limit in limits):
        return False
    for limit in limits:
        d = decayed[limit.id]
        limit_write(limit, active_slots=d.active_slots + slots, denied_slots=d.denied_slots, updated=d.clock)
    return True


def slots_deny(limits: Sequence[ConcurrencyLimitV2], slots: int, now: dt.datetime) -> float:
    """Count a denied request on every limit; the Retry-After for the caller."""
    denied: dict[uuid.UUID, int] = {}
    for limit in limits:
        d = limit_decayed(limit, now)
        denied[limit.id] = d.denied_slots
        limit_write(limit, active_slots=d.active_slots, denied_slots=d.denied_slots + slots, updated=d.clock)
    return _retry_after(limits, denied, slots)


def _holder_metadata(holder: dict[str, Any] | None) -> dict[str, Any] | None:
    if not holder:
        return None
    return {"holder": {"type": holder["type"], "id": str(holder["id"])}}


def lease_create(
    *,
    limits: Sequence[ConcurrencyLimitV2],
    slots: int,
    ttl: dt.timedelta,
    holder: dict[str, Any] | None,
    now: dt.datetime,
) -> ConcurrencyLease:
    lease = ConcurrencyLease.objects.create(
        workspace_id=current_workspace_id(),
        slots=slots,
        expiration=now + ttl,
        metadata=_holder_metadata(holder),
    )
    LeaseThrough.objects.bulk_create(
        [LeaseThrough(concurrencylease_id=lease.id, concurrencylimitv2_id=limit.id) for limit in limits]
    )
    return lease


def slots_give_back(
    slots_by_limit: dict[uuid.UUID, int], occupancy: dict[uuid.UUID, float], now: dt.datetime
) -> None:
    """Return slots to limits (locked here, in id order); never below zero."""
    for limit in limits_lock(id__in=list(slots_by_limit)):
        slots = slots_by_limit[limit.id]
        d = limit_decayed(limit, now)
        values: dict[str, Any] = {
            "active_slots": max(0, d.active_slots - slots),
            "denied_slots": d.denied_slots,
            "updated": d.clock,
        }
        seconds = occupancy.get(limit.id)
        if seconds:
            # A running average over the last ``limit * OCCUPANCY_SAMPLES_MULTIPLIER`` releases.
            per_slot = max(seconds / slots, MIN_OCCUPANCY_SECONDS_PER_SLOT)
            samples = max(limit.limit, 1) * OCCUPANCY_SAMPLES_MULTIPLIER
            avg = limit.avg_slot_occupancy_seconds
            values["avg_slot_occupancy_seconds"] = avg + per_slot / samples - avg / samples
        limit_write(limit, **values)


def leases_release(lease_ids: Iterable[uuid.UUID], now: dt.datetime) -> int:
    """Release leases (locked here, then their limits): each held slot goes back once."""
    leases = list(ConcurrencyLease.objects.select_for_update().filter(id__in=list(lease_ids)).order_by("id"))
    if not leases:
        return 0
    by_id = {lease.id: lease for lease in leases}
    slots_by_limit: dict[uuid.UUID, int] = defaultdict(int)
    occupancy: dict[uuid.UUID, float] = defaultdict(float)
    links = LeaseThrough.objects.filter(concurrencylease_id__in=list(by_id)).values_list(
        "concurrencylease_id", "concurrencylimitv2_id"
    )
    for lease_id, limit_id in links:
        lease = by_id[lease_id]
        slots_by_limit[limit_id] += lease.slots
        occupancy[limit_id] += max(0.0, (now - lease.created).total_seconds())
    if slots_by_limit:
        slots_give_back(dict(slots_by_limit), dict(occupancy), now)
    LeaseThrough.objects.filter(concurrencylease_id__in=list(by_id)).delete()
    ConcurrencyLease.objects.filter(id__in=list(by_id)).delete()
    return len(leases)


def tag_limit_name(tag: str) -> str:
    """The limit behind a tag's (v1) task-run concurrency limit."""
    return f"{TAG_PREFIX}{tag}"


def task_run_tag_leases_release(*, tags: Sequence[str], task_run_id: uuid.UUID, now: dt.datetime) -> int:
    """Give back the slots a task run holds on its tags' limits (its leases on them)."""
    lease_ids = (
        ConcurrencyLease.objects.filter(
            limits__name__in=[tag_limit_name(tag) for tag in tags], metadata__holder__id=str(task_run_id)
        )
        .values_list("id", flat=True)
        .distinct()
    )
    return leases_release(list(lease_ids), now)


def lease_release(*, lease_id: uuid.UUID) -> bool:
    """Give back the slots of a lease; False when it is already gone (released or expired)."""
    with transaction.atomic():
        return leases_release([lease_id], timezone.now()) == 1


def lease_renew(*, lease_id: uuid.UUID, ttl: dt.timedelta) -> bool:
    """Push the lease's expiration to ``now + ttl``. A lease past its expiration that the sweep
    has not reached yet still holds its slots, so it can still be renewed; False when it is gone."""
    return ConcurrencyLease.objects.filter(id=lease_id).update(expiration=timezone.now() + ttl) == 1


# --- deployment limits ---------------------------------------------------------------------------


def deployment_limit_name(deployment_id: uuid.UUID) -> str:
    return f"{DEPLOYMENT_PREFIX}{deployment_id}"


def deployment_concurrency_limit(*, deployment: Deployment) -> ConcurrencyLimitV2 | None:
    """The limit behind ``deployment.concurrency_limit``, created or resized to match it; None
    when the deployment has no limit."""
    if deployment.concurrency_limit is None:
        return None
    name = deployment_limit_name(deployment.id)
    limit = ConcurrencyLimitV2.objects.filter(name=name).first()
    if limit is None:
        try:
            with transaction.atomic():
                return ConcurrencyLimitV2.objects.create(
                    workspace_id=deployment.workspace_id, name=name, limit=deployment.concurrency_limit
                )
        except IntegrityError:
            limit = ConcurrencyLimitV2.objects.get(name=name)
    if limit.limit != deployment.concurrency_limit:
        ConcurrencyLimitV2.objects.filter(id=limit.id).update(limit=deployment.concurrency_limit)
        limit.limit = deployment.concurrency_limit
    return limit


def deployment_lease_seconds(deployment: Deployment) -> float:
    """How long a deployment slot is held before the run's client must renew it."""
    options = deployment.concurrency_options or {}
    grace = options.get("grace_period_seconds") if isinstance(options, dict) else None
    return float(grace) if grace else INITIAL_DEPLOYMENT_LEASE_SECONDS


def deployment_collision_strategy(deployment: Deployment) -> str:
    options = deployment.concurrency_options or {}
    strategy = options.get("collision_strategy") if isinstance(options, dict) else None
    return str(strategy or "ENQUEUE").upper()


def deployment_slot_acquire(
    *, limit: ConcurrencyLimitV2, flow_run_id: uuid.UUID, ttl: dt.timedelta
) -> ConcurrencyLease | None:
    """One slot of a deployment's limit for a flow run, under a lease; None when it is full."""
    now = timezone.now()
    with transaction.atomic():
        (locked,) = limits_lock(id=limit.id)
        if not slots_take([locked], 1, now):
            return None
        return lease_create(
            limits=[locked], slots=1, ttl=ttl, holder={"type": "flow_run", "id": flow_run_id}, now=now
        )
