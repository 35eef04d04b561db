"""Concurrency limits: global (v2) limits, their slots and leases, tag limits for task runs (v1,
kept as v2 limits named ``tag:<tag>`` as Prefect 3 does), and the limits behind deployments
(``deployment:<deployment id>``).

Contracts:

* Slot arithmetic happens with the limit rows locked (``select_for_update``, always in id order,
  leases before limits) inside one transaction, so concurrent increments never oversubscribe a
  limit and decrements are never lost. ``active_slots`` never goes below zero.
* Every slot taken with a lease is released exactly once: by the holder
  (``decrement-with-lease``), by the orchestration rules, or by :func:`leases_expire` when the
  holder stops renewing (a crashed holder never leaks a slot). Releasing locks the lease row and
  deletes it, so two releasers cannot both decrement.
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

from core.errors import AppError, Conflict, Locked, NotFound
from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2, Deployment
from tenants.scoping import current_workspace_id, workspace_scope

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
EXPIRY_BATCH = 500

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


def _write(row: ConcurrencyLimitV2, /, **values: Any) -> None:
    """Store counters with a queryset update (``updated`` is the decay clock, set explicitly)."""
    ConcurrencyLimitV2.objects.filter(id=row.id).update(**values)
    for name, value in values.items():
        setattr(row, name, value)


def _lock_limits(**lookup: Any) -> list[ConcurrencyLimitV2]:
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


# --- global limits (v2) ----------------------------------------------------------------------------


def _lookup(id_or_name: str) -> dict[str, Any]:
    try:
        return {"id": uuid.UUID(str(id_or_name))}
    except ValueError:
        return {"name": id_or_name}


def concurrency_limit_get(*, id_or_name: str) -> ConcurrencyLimitV2:
    limit = ConcurrencyLimitV2.objects.filter(**_lookup(id_or_name)).first()
    if limit is None:
        raise NotFound("Concurrency Limit not found")
    return limit


def concurrency_limit_create(
    *,
    name: str,
    limit: int,
    active: bool = True,
    active_slots: int = 0,
    denied_slots: int = 0,
    slot_decay_per_second: float = 0.0,
) -> ConcurrencyLimitV2:
    try:
        with transaction.atomic():
            return ConcurrencyLimitV2.objects.create(
                workspace_id=current_workspace_id(),
                name=name,
                limit=limit,
                active=active,
                active_slots=active_slots,
                denied_slots=denied_slots,
                slot_decay_per_second=slot_decay_per_second,
            )
    except IntegrityError:
        raise Conflict(f"A concurrency limit with the name {name!r} already exists.") from None


UPDATABLE_FIELDS = ("name", "limit", "active", "active_slots", "denied_slots", "slot_decay_per_second")


def concurrency_limit_update(*, id_or_name: str, changes: dict[str, Any]) -> ConcurrencyLimitV2:
    """Apply ``changes`` (fields left out or null are kept). Decay up to now is settled first,
    so a new decay rate applies from now on."""
    changes = {k: v for k, v in changes.items() if k in UPDATABLE_FIELDS and v is not None}
    try:
        with transaction.atomic():
            (limit,) = _lock_limits(**_lookup(id_or_name)) or (None,)
            if limit is None:
                raise NotFound("Concurrency Limit not found")
            now = timezone.now()
            decayed = limit_decayed(limit, now)
            values = {
                "active_slots": decayed.active_slots,
                "denied_slots": decayed.denied_slots,
                "updated": now,
                **changes,
            }
            _write(limit, **values)
            return limit
    except IntegrityError:
        raise Conflict(f"A concurrency limit with the name {changes.get('name')!r} already exists.") from None


def concurrency_limit_delete(*, id_or_name: str) -> None:
    """Delete a limit. Leases that held it keep their other limits (and release those)."""
    deleted, _ = ConcurrencyLimitV2.objects.filter(**_lookup(id_or_name)).delete()
    if not deleted:
        raise NotFound("Concurrency Limit not found")


# --- slots ---------------------------------------------------------------------------------------


@dataclass
class Acquired:
    """What an increment took: every limit named (inactive ones included, as Prefect answers)
    and, when asked for, the lease on the active ones."""

    limits: list[ConcurrencyLimitV2]
    lease: ConcurrencyLease | None = None
    lease_id: uuid.UUID | None = None


def _take(limits: Sequence[ConcurrencyLimitV2], slots: int, now: dt.datetime) -> bool:
    """Take ``slots`` on every limit (locked by the caller) or on none."""
    decayed = {limit.id: limit_decayed(limit, now) for limit in limits}
    if any(decayed[limit.id].active_slots + slots > limit.limit for limit in limits):
        return False
    for limit in limits:
        d = decayed[limit.id]
        _write(limit, active_slots=d.active_slots + slots, denied_slots=d.denied_slots, updated=d.clock)
    return True


def _deny(limits: Sequence[ConcurrencyLimitV2], slots: int, now: dt.datetime) -> float:
    """Count a denied request on every limit; the Retry-After for the caller."""
    denied: dict[uuid.UUID, int] = {}
    for limit in limits:
        d = limit_decayed(limit, now)
        denied[limit.id] = d.denied_slots
        _write(limit, active_slots=d.active_slots, denied_slots=d.denied_slots + slots, updated=d.clock)
    return _retry_after(limits, denied, slots)


def _holder_metadata(holder: dict[str, Any] | None) -> dict[str, Any] | None:
    if not holder:
        return None
    return {"holder": {"type": holder["type"], "id": str(holder["id"])}}


def _lease_create(
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


def slots_increment(
    *,
    names: Iterable[str],
    slots: int,
    mode: Mode = "concurrency",
    lease_ttl: dt.timedelta | None = None,
    holder: dict[str, Any] | None = None,
) -> Acquired:
    """Take ``slots`` on every active limit named, all or nothing; with ``lease_ttl`` under a
    lease that :func:`lease_release` or expiry gives back. Names without a limit are ignored.
    Raises :class:`SlotsLocked` (423) when a limit is full, :class:`InvalidSlots` (422) when a
    limit can never grant the request or a rate limit has no decay."""
    now = timezone.now()
    with transaction.atomic():
        limits = _lock_limits(name__in=set(names))
        active = [limit for limit in limits if limit.active]
        if any(limit.limit < slots for limit in active):
            raise InvalidSlots("Slots requested is greater than the limit")
        non_decaying = [limit.name for limit in active if limit.slot_decay_per_second == 0.0]
        if mode == "rate_limit" and non_decaying:
            raise InvalidSlots(
                "Only concurrency limits with slot decay can be used for rate limiting. The following "
                f"limits do not have a decay configured: {','.join(non_decaying)!r}"
            )
        if _take(active, slots, now):
            result = Acquired(limits=limits)
            if lease_ttl is not None:
                if limits:
                    result.lease = _lease_create(
                        limits=active, slots=slots, ttl=lease_ttl, holder=holder, now=now
                    )
                    result.lease_id = result.lease.id
                else:
                    # Nothing to hold: the client neither renews nor releases a lease without limits.
                    result.lease_id = uuid.uuid4()
            return result
        retry_after = _deny(active, slots, now)
    raise SlotsLocked("Concurrency limit reached", retry_after=retry_after)


def _give_back(
    slots_by_limit: dict[uuid.UUID, int], occupancy: dict[uuid.UUID, float], now: dt.datetime
) -> None:
    """Return slots to limits (locked here, in id order); never below zero."""
    for limit in _lock_limits(id__in=list(slots_by_limit)):
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
        _write(limit, **values)


def slots_decrement(
    *, names: Iterable[str], slots: int, occupancy_seconds: float | None = None
) -> list[ConcurrencyLimitV2]:
    """Give back ``slots`` taken without a lease on every active limit named."""
    now = timezone.now()
    with transaction.atomic():
        limits = list(ConcurrencyLimitV2.objects.filter(name__in=set(names)).order_by("name"))
        active = {limit.id: slots for limit in limits if limit.active}
        occupancy = {limit_id: occupancy_seconds for limit_id in active} if occupancy_seconds else {}
        if active:
            _give_back(active, occupancy, now)
    return limits


def _release_leases(lease_ids: Iterable[uuid.UUID], now: dt.datetime) -> int:
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
        _give_back(dict(slots_by_limit), dict(occupancy), now)
    LeaseThrough.objects.filter(concurrencylease_id__in=list(by_id)).delete()
    ConcurrencyLease.objects.filter(id__in=list(by_id)).delete()
    return len(leases)


def lease_release(*, lease_id: uuid.UUID) -> bool:
    """Give back the slots of a lease; False when it is already gone (released or expired)."""
    with transaction.atomic():
        return _release_leases([lease_id], timezone.now()) == 1


def lease_renew(*, lease_id: uuid.UUID, ttl: dt.timedelta) -> bool:
    """Push the lease's expiration to ``now + ttl``. A lease past its expiration that the sweep
    has not reached yet still holds its slots, so it can still be renewed; False when it is gone."""
    return ConcurrencyLease.objects.filter(id=lease_id).update(expiration=timezone.now() + ttl) == 1


def leases_expire(*, now: dt.datetime | None = None, batch: int = EXPIRY_BATCH) -> int:
    """Release the slots of every expired lease, in every workspace (the Celery sweep). Each
    lease is released in its own workspace scope and transaction; a lease renewed or released
    meanwhile is skipped (the expiry is checked again under the row lock)."""
    now = now or timezone.now()
    released = 0
    while True:
        # A cross-tenant sweep, on purpose.
        expired = list(
            ConcurrencyLease.objects.unscoped()
            .filter(expiration__lt=now)
            .order_by("expiration")
            .values_list("id", "workspace_id")[:batch]
        )
        if not expired:
            return released
        done = 0
        for lease_id, workspace_id in expired:
            with workspace_scope(workspace_id), transaction.atomic():
                ids = ConcurrencyLease.objects.filter(id=lease_id, expiration__lt=now).values_list(
                    "id", flat=True
                )
                done += _release_leases(list(ids), timezone.now())
        released += done
        if len(expired) < batch or done == 0:
            return released


def lease_holders(
    limit_ids: Iterable[uuid.UUID], *, holder_type: str | None = None
) -> dict[uuid.UUID, list[str]]:
    """The holder ids of the unexpired leases on each limit."""
    now = timezone.now()
    result: dict[uuid.UUID, list[str]] = defaultdict(list)
    rows = LeaseThrough.objects.filter(
        concurrencylimitv2_id__in=list(limit_ids), concurrencylease__expiration__gt=now
    ).values_list("concurrencylimitv2_id", "concurrencylease__metadata")
    for limit_id, metadata in rows:
        holder = (metadata or {}).get("holder") or {}
        if holder.get("id") and (holder_type is None or holder.get("type") == holder_type):
            result[limit_id].append(holder["id"])
    return result


# --- tag limits of task runs (v1 wire, v2 storage) -----------------------------------------------


def tag_limit_name(tag: str) -> str:
    return f"{TAG_PREFIX}{tag}"


def tag_limit_get(*, tag: str | None = None, limit_id: uuid.UUID | None = None) -> ConcurrencyLimitV2:
    qs = ConcurrencyLimitV2.objects.filter(name__startswith=TAG_PREFIX)
    limit = (qs.filter(name=tag_limit_name(tag)) if tag is not None else qs.filter(id=limit_id)).first()
    if limit is None:
        raise NotFound("Concurrency limit not found")
    return limit


def tag_limit_upsert(*, tag: str, concurrency_limit: int) -> tuple[ConcurrencyLimitV2, bool]:
    """Create the limit of ``tag``, or change its size; ``(limit, created)``."""
    name = tag_limit_name(tag)
    for _ in range(2):
        existing = ConcurrencyLimitV2.objects.filter(name=name).first()
        if existing is not None:
            return concurrency_limit_update(
                id_or_name=str(existing.id), changes={"limit": concurrency_limit}
            ), False
        try:
            return concurrency_limit_create(name=name, limit=concurrency_limit), True
        except Conflict:
            continue  # created concurrently: update it instead
    raise Conflict(f"A concurrency limit for the tag {tag!r} is being created concurrently.")


def tag_limit_delete(*, tag: str | None = None, limit_id: uuid.UUID | None = None) -> None:
    limit = tag_limit_get(tag=tag, limit_id=limit_id)
    ConcurrencyLimitV2.objects.filter(id=limit.id).delete()


def tag_limit_reset(*, tag: str, slot_override: Sequence[uuid.UUID] | None = None) -> None:
    """Release every lease on the tag's limit, zero its slots, then hand one slot (with a lease
    that never expires) to each task run of ``slot_override``."""
    now = timezone.now()
    with transaction.atomic():
        limit = tag_limit_get(tag=tag)
        lease_ids = LeaseThrough.objects.filter(concurrencylimitv2_id=limit.id).values_list(
            "concurrencylease_id", flat=True
        )
        _release_leases(list(lease_ids), now)
        (limit,) = _lock_limits(id=limit.id)
        override = list(dict.fromkeys(slot_override or []))
        _write(limit, active_slots=len(override), denied_slots=0, updated=now)
        for task_run_id in override:
            _lease_create(
                limits=[limit],
                slots=1,
                ttl=V1_LEASE_TTL,
                holder={"type": "task_run", "id": task_run_id},
                now=now,
            )


def tag_slots_increment(
    *, tags: Sequence[str], task_run_id: uuid.UUID
) -> list[tuple[ConcurrencyLimitV2, str]]:
    """The v1 ``concurrency_limits/increment``: one slot per tag limit for a task run, all or
    nothing, under a lease that never expires (v1 clients do not renew); ``(limit, tag)`` pairs."""
    now = timezone.now()
    with transaction.atomic():
        limits = _lock_limits(name__in=[tag_limit_name(tag) for tag in tags])
        for limit in limits:
            if limit.limit == 0:
                tag = limit.name.removeprefix(TAG_PREFIX)
                raise SlotsLocked(
                    f'The concurrency limit on tag "{tag}" is 0 and will deadlock if the task tries to run again.',
                    retry_after=TAG_SLOT_WAIT_SECONDS,
                )
        active = [limit for limit in limits if limit.active]
        if active:
            if not _take(active, 1, now):
                full = next(
                    limit for limit in active if limit_decayed(limit, now).active_slots + 1 > limit.limit
                )
                tag = full.name.removeprefix(TAG_PREFIX)
                _deny(active, 1, now)
                acquired = False
            else:
                acquired = True
                _lease_create(
                    limits=active,
                    slots=1,
                    ttl=V1_LEASE_TTL,
                    holder={"type": "task_run", "id": task_run_id},
                    now=now,
                )
        else:
            acquired = True
    if not acquired:
        raise SlotsLocked(
            f"Concurrency limit for the {tag} tag has been reached", retry_after=TAG_SLOT_WAIT_SECONDS
        )
    return [(limit, limit.name.removeprefix(TAG_PREFIX)) for limit in active]


def tag_slots_decrement(*, tags: Sequence[str], task_run_id: uuid.UUID) -> list[ConcurrencyLimitV2]:
    """The v1 ``concurrency_limits/decrement``: release the task run's leases on these tags."""
    names = [tag_limit_name(tag) for tag in tags]
    with transaction.atomic():
        limits = list(ConcurrencyLimitV2.objects.filter(name__in=names).order_by("name"))
        lease_ids = (
            ConcurrencyLease.objects.filter(
                limits__in=[limit.id for limit in limits], metadata__holder__id=str(task_run_id)
            )
            .values_list("id", flat=True)
            .distinct()
        )
        _release_leases(list(lease_ids), timezone.now())
    return limits


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


def deployment_concurrency_limit_delete(*, deployment_id: uuid.UUID) -> None:
    """Drop the limit behind a deployment (for the deployment services, on delete or when the
    limit is removed)."""
    ConcurrencyLimitV2.objects.filter(name=deployment_limit_name(deployment_id)).delete()


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
        (locked,) = _lock_limits(id=limit.id)
        if not _take([locked], 1, now):
            return None
        return _lease_create(
            limits=[locked], slots=1, ttl=ttl, holder={"type": "flow_run", "id": flow_run_id}, now=now
        )


__all__ = [
    "Acquired",
    "InvalidSlots",
    "SlotsLocked",
    "concurrency_limit_create",
    "concurrency_limit_delete",
    "concurrency_limit_get",
    "concurrency_limit_update",
    "deployment_concurrency_limit",
    "deployment_concurrency_limit_delete",
    "deployment_slot_acquire",
    "lease_holders",
    "lease_release",
    "lease_renew",
    "leases_expire",
    "limit_decayed",
    "slots_decrement",
    "slots_increment",
    "tag_limit_delete",
    "tag_limit_get",
    "tag_limit_reset",
    "tag_limit_upsert",
    "tag_slots_decrement",
    "tag_slots_increment",
]
