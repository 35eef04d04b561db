"""Concurrency limit routes: global limits (``v2/concurrency_limits``), their slots and leases, and
the tag limits of task runs (``concurrency_limits``, stored as v2 limits named ``tag:<tag>``).

Scopes: reads need ``see_concurrency_limits``; creating, editing, deleting and resetting limits
need ``manage_concurrency_limits``. Taking, releasing and renewing slots is what running flows
and tasks do, so it needs ``run_flows`` (Developers and Workers have it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from django.http import HttpResponse
from django.utils import timezone
from pydantic import Field
from rest_framework.response import Response

from orchestration.api.base import PrefectApiView, created, no_content, parse_id
from orchestration.api.concurrency.wire import limit_to_wire, minimal_to_wire, tag_limit_to_wire
from orchestration.models import ConcurrencyLimitV2
from orchestration.schemas.base import PrefectModel
from orchestration.selectors.filters import paging
from orchestration.services import concurrency as services

SEE = "see_concurrency_limits"
MANAGE = "manage_concurrency_limits"
RUN = "run_flows"

NAME_PATTERN = r"^[^/%&><]+$"
LEASE_SECONDS = Field(default=300, ge=60, le=60 * 60 * 24)


# --- bodies ----------------------------------------------------------------------------------------


class LimitCreate(PrefectModel):
    name: str = Field(min_length=1, max_length=255, pattern=NAME_PATTERN)
    limit: int = Field(ge=0)
    active: bool | None = True
    active_slots: int | None = Field(default=0, ge=0)
    denied_slots: int | None = Field(default=0, ge=0)
    slot_decay_per_second: float | None = Field(default=0.0, ge=0)


class LimitUpdate(PrefectModel):
    name: str | None = Field(default=None, min_length=1, max_length=255, pattern=NAME_PATTERN)
    limit: int | None = Field(default=None, ge=0)
    active: bool | None = None
    active_slots: int | None = Field(default=None, ge=0)
    denied_slots: int | None = Field(default=None, ge=0)
    slot_decay_per_second: float | None = Field(default=None, ge=0)


class Holder(PrefectModel):
    type: Literal["flow_run", "task_run", "deployment"]
    id: uuid.UUID


class SlotsIncrement(PrefectModel):
    slots: int = Field(gt=0)
    names: list[str] = Field(min_length=1)
    mode: Literal["concurrency", "rate_limit"] = "concurrency"


class SlotsIncrementWithLease(SlotsIncrement):
    lease_duration: float = LEASE_SECONDS
    holder: Holder | None = None


class SlotsDecrement(PrefectModel):
    slots: int = Field(gt=0)
    names: list[str] = Field(min_length=1)
    occupancy_seconds: float | None = Field(default=None, gt=0)


class LeaseRelease(PrefectModel):
    lease_id: uuid.UUID


class LeaseRenew(PrefectModel):
    lease_duration: float = LEASE_SECONDS


class TagLimitCreate(PrefectModel):
    tag: str = Field(min_length=1, max_length=250)
    concurrency_limit: int = Field(ge=0)


class TagReset(PrefectModel):
    slot_override: list[uuid.UUID] | None = None


class TagSlots(PrefectModel):
    names: list[str]
    task_run_id: uuid.UUID
    occupancy_seconds: float | None = None


# --- shapes ----------------------------------------------------------------------------------------


def _tag_limits_to_wire(limits: list[ConcurrencyLimitV2]) -> list[dict[str, Any]]:
    holders = services.lease_holders([limit.id for limit in limits], holder_type="task_run")
    return [tag_limit_to_wire(limit, holders.get(limit.id, [])) for limit in limits]


def _null() -> HttpResponse:
    """Prefect's FastAPI answers a handler returning None with 200 and a JSON ``null``."""
    return HttpResponse(b"null", status=200, content_type="application/json")


class ConcurrencyApiView(PrefectApiView):
    """The concurrency routes (a full limit answers 423 with Retry-After: ``SlotsLocked``)."""


# --- global limits (v2) ----------------------------------------------------------------------------


class ConcurrencyLimitV2CreateApi(ConcurrencyApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        data = self.parse(LimitCreate)
        limit = services.concurrency_limit_create(
            name=data.name,
            limit=data.limit,
            active=True if data.active is None else data.active,
            active_slots=data.active_slots or 0,
            denied_slots=data.denied_slots or 0,
            slot_decay_per_second=data.slot_decay_per_second or 0.0,
        )
        return created(limit_to_wire(limit))


class ConcurrencyLimitV2DetailApi(ConcurrencyApiView):
    required_scopes = {"GET": SEE, "PATCH": MANAGE, "DELETE": MANAGE}

    def get(self, request, id_or_name: str):
        return Response(limit_to_wire(services.concurrency_limit_get(id_or_name=id_or_name)))

    def patch(self, request, id_or_name: str):
        data = self.parse(LimitUpdate)
        services.concurrency_limit_update(id_or_name=id_or_name, changes=data.model_dump(exclude_unset=True))
        return no_content()

    def delete(self, request, id_or_name: str):
        services.concurrency_limit_delete(id_or_name=id_or_name)
        return no_content()


class ConcurrencyLimitV2FilterApi(ConcurrencyApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        limit, offset = paging(self.body())
        now = timezone.now()
        limits = ConcurrencyLimitV2.objects.order_by("name")[offset : offset + limit]
        return Response([limit_to_wire(row, now) for row in limits])


class ConcurrencyLimitV2IncrementApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        data = self.parse(SlotsIncrement)
        acquired = services.slots_increment(names=data.names, slots=data.slots, mode=data.mode)
        return Response([minimal_to_wire(limit) for limit in acquired.limits])


class ConcurrencyLimitV2IncrementWithLeaseApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        data = self.parse(SlotsIncrementWithLease)
        acquired = services.slots_increment(
            names=data.names,
            slots=data.slots,
            mode=data.mode,
            lease_ttl=dt.timedelta(seconds=data.lease_duration),
            holder=data.holder.model_dump() if data.holder else None,
        )
        return Response(
            {
                "lease_id": str(acquired.lease_id),
                "limits": [minimal_to_wire(limit) for limit in acquired.limits],
            }
        )


class ConcurrencyLimitV2DecrementApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        data = self.parse(SlotsDecrement)
        limits = services.slots_decrement(
            names=data.names, slots=data.slots, occupancy_seconds=data.occupancy_seconds
        )
        return Response([minimal_to_wire(limit) for limit in limits])


class ConcurrencyLimitV2DecrementWithLeaseApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        services.lease_release(lease_id=self.parse(LeaseRelease).lease_id)
        return no_content()


class ConcurrencyLeaseRenewApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request, lease_id: str):
        data = self.parse(LeaseRenew)
        renewed = services.lease_renew(
            lease_id=parse_id(lease_id, "Lease"), ttl=dt.timedelta(seconds=data.lease_duration)
        )
        if not renewed:
            return Response({"detail": "Lease not found - it may have expired or been revoked"}, status=410)
        return no_content()


# --- tag limits of task runs (v1) ----------------------------------------------------------------


class TagLimitCreateApi(ConcurrencyApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request):
        data = self.parse(TagLimitCreate)
        limit, was_created = services.tag_limit_upsert(tag=data.tag, concurrency_limit=data.concurrency_limit)
        (body,) = _tag_limits_to_wire([limit])
        return Response(body, status=201 if was_created else 200)


class TagLimitDetailApi(ConcurrencyApiView):
    required_scopes = {"GET": SEE, "DELETE": MANAGE}

    def get(self, request, limit_id: str):
        limit = services.tag_limit_get(limit_id=parse_id(limit_id, "Concurrency limit"))
        return Response(_tag_limits_to_wire([limit])[0])

    def delete(self, request, limit_id: str):
        services.tag_limit_delete(limit_id=parse_id(limit_id, "Concurrency limit"))
        return _null()


class TagLimitByTagApi(ConcurrencyApiView):
    required_scopes = {"GET": SEE, "DELETE": MANAGE}

    def get(self, request, tag: str):
        return Response(_tag_limits_to_wire([services.tag_limit_get(tag=tag)])[0])

    def delete(self, request, tag: str):
        services.tag_limit_delete(tag=tag)
        return _null()


class TagLimitFilterApi(ConcurrencyApiView):
    required_scopes = {"POST": SEE}

    def post(self, request):
        limit, offset = paging(self.body())
        limits = ConcurrencyLimitV2.objects.filter(name__startswith=services.TAG_PREFIX).order_by("name")
        return Response(_tag_limits_to_wire(list(limits[offset : offset + limit])))


class TagLimitResetApi(ConcurrencyApiView):
    required_scopes = {"POST": MANAGE}

    def post(self, request, tag: str):
        services.tag_limit_reset(tag=tag, slot_override=self.parse(TagReset, self.body()).slot_override)
        return _null()


class TagSlotsIncrementApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        data = self.parse(TagSlots)
        acquired = services.tag_slots_increment(tags=data.names, task_run_id=data.task_run_id)
        return Response([minimal_to_wire(limit, tag) for limit, tag in acquired])


class TagSlotsDecrementApi(ConcurrencyApiView):
    required_scopes = {"POST": RUN}

    def post(self, request):
        data = self.parse(TagSlots)
        limits = services.tag_slots_decrement(tags=data.names, task_run_id=data.task_run_id)
        return Response([minimal_to_wire(limit) for limit in limits])
