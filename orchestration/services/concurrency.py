"""Concurrency limits: global (v2) limits, their slots and leases, tag limits for task runs (v1,
kept as v2 limits named ``tag:<tag>`` as Prefect 3 does), and the limits behind deployments
(``deployment:<deployment id>``).

The slot arithmetic on locked rows lives in ``orchestration.persistence.concurrency``, shared with
the deployment-concurrency rules. Contracts:

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
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, NotFound
from core.ids import as_uuid
from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2
from orchestration.persistence.concurrency import (
    TAG_PREFIX,
    TAG_SLOT_WAIT_SECONDS,
    V1_LEASE_TTL,
    Acquired,
    InvalidSlots,
    LeaseThrough,
    Mode,
    SlotsLocked,
    deployment_concurrency_limit,
    deployment_limit_name,
    deployment_slot_acquire,
    lease_create,
    lease_release,
    lease_renew,
    leases_release,
    limit_decayed,
    limit_write,
    limits_lock,
    slots_deny,
    slots_give_back,
    slots_take,
    tag_limit_name,
    task_run_tag_leases_release,
)
from tenants.scoping import current_workspace_id, workspace_scope

#: Leases released per query by the expiry sweep.
EXPIRY_BATCH = 500

# --- global limits (v2) ----------------------------------------------------------------------------


def _lookup(id_or_name: str) -> dict[str, Any]:
    limit_id = as_uuid(id_or_name)
    return {"id": limit_id} if limit_id is not None else {"name": id_or_name}


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
            (limit,) = limits_lock(**_lookup(id_or_name)) or (None,)
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
            limit_write(limit, **values)
            return limit
    except IntegrityError:
        raise Conflict(f"A concurrency limit with the name {changes.get('name')!r} already exists.") from None


def concurrency_limit_delete(*, id_or_name: str) -> None:
    """Delete a limit. Leases that held it keep their other limits (and release those)."""
    deleted, _ = ConcurrencyLimitV2.objects.filter(**_lookup(id_or_name)).delete()
    if not deleted:
        raise NotFound("Concurrency Limit not found")


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
        limits = limits_lock(name__in=set(names))
        active = [limit for limit in limits if limit.active]
        if any(limit.limit < slots for limit in active):
            raise InvalidSlots("Slots requested is greater than the limit")
        non_decaying = [limit.name for limit in active if limit.slot_decay_per_second == 0.0]
        if mode == "rate_limit" and non_decaying:
            raise InvalidSlots(
                "Only concurrency limits with slot decay can be used for rate limiting. The following "
                f"limits do not have a decay configured: {','.join(non_decaying)!r}"
            )
        if slots_take(active, slots, now):
            result = Acquired(limits=limits)
            if lease_ttl is not None:
                if limits:
                    result.lease = lease_create(
                        limits=active, slots=slots, ttl=lease_ttl, holder=holder, now=now
                    )
                    result.lease_id = result.lease.id
                else:
                    # Nothing to hold: the client neither renews nor releases a lease without limits.
                    result.lease_id = uuid.uuid4()
            return result
        retry_after = slots_deny(active, slots, now)
    raise SlotsLocked("Concurrency limit reached", retry_after=retry_after)


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
            slots_give_back(active, occupancy, now)
    return limits


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
                done += leases_release(list(ids), timezone.now())
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
        leases_release(list(lease_ids), now)
        (limit,) = limits_lock(id=limit.id)
        override = list(dict.fromkeys(slot_override or []))
        limit_write(limit, active_slots=len(override), denied_slots=0, updated=now)
        for task_run_id in override:
            lease_create(
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
        limits = limits_lock(name__in=[tag_limit_name(tag) for tag in tags])
        for limit in limits:
            if limit.limit == 0:
                tag = limit.name.removeprefix(TAG_PREFIX)
                raise SlotsLocked(
                    f'The concurrency limit on tag "{tag}" is 0 and will deadlock if the task tries to run again.',
                    retry_after=TAG_SLOT_WAIT_SECONDS,
                )
        active = [limit for limit in limits if limit.active]
        if active:
            if not slots_take(active, 1, now):
                full = next(
                    limit for limit in active if limit_decayed(limit, now).active_slots + 1 > limit.limit
                )
                tag = full.name.removeprefix(TAG_PREFIX)
                slots_deny(active, 1, now)
                acquired = False
            else:
                acquired = True
                lease_create(
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
        task_run_tag_leases_release(tags=tags, task_run_id=task_run_id, now=timezone.now())
    return limits


def deployment_concurrency_limit_delete(*, deployment_id: uuid.UUID) -> None:
    """Drop the limit behind a deployment (for the deployment services, on delete or when the
    limit is removed)."""
    ConcurrencyLimitV2.objects.filter(name=deployment_limit_name(deployment_id)).delete()


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
