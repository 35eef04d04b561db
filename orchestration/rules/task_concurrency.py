"""Tag concurrency of task runs the server orchestrates (``set_task_run_state``), as Prefect's
``core_policy.py`` governs it:

* :class:`SecureTaskConcurrencySlots` — a task run proposing RUNNING takes one slot on the limit of
  each of its tags (all or none) under a lease held by the task run; when a limit is full the
  transition WAITs (``delay_seconds`` around the fullest limit's average slot occupancy, at most
  ``TAG_SLOT_WAIT_SECONDS``); a limit of 0 ABORTs it (it would deadlock). Inactive limits do not
  count. If another rule then changes the transition, the lease is given back.
* :class:`ReleaseTaskConcurrencySlots` — any accepted transition to a state other than RUNNING or
  CANCELLING gives back the slots the task run holds on its tags' limits.

Tag limits are the ``concurrency_limits/`` (v1) routes' limits, stored as ``tag:<tag>`` limits
(``orchestration.persistence.concurrency``), so a slot taken here is one the v1
``increment``/``decrement`` routes and the v2 routes count too. A task run without tags pays
nothing: no query is made.
"""

from __future__ import annotations

from django.utils import timezone

from orchestration.models.states import StateType
from orchestration.persistence import concurrency as slots
from orchestration.rules.base import ALL_ORCHESTRATION_STATES, BaseOrchestrationRule, BaseUniversalTransform
from orchestration.rules.task_runs import clamped_poisson_interval

#: Prefect's ``clamped_poisson_interval`` default clamping factor.
DELAY_CLAMPING_FACTOR = 0.3
#: States that keep a task run's tag slots.
HOLDING_STATES = frozenset({StateType.RUNNING, StateType.CANCELLING})


def _tags(context) -> list[str]:
    return list(dict.fromkeys(context.run.tags or []))


class SecureTaskConcurrencySlots(BaseOrchestrationRule):
    FROM_STATES = ALL_ORCHESTRATION_STATES
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(self, initial_state, proposed_state, context) -> None:
        self._lease_id = None
        tags = _tags(context)
        if not tags:
            return
        limits = slots.limits_lock(name__in=[slots.tag_limit_name(tag) for tag in tags])
        for limit in limits:
            if limit.active and limit.limit == 0:
                tag = limit.name.removeprefix(slots.TAG_PREFIX)
                self.abort_transition(
                    reason=f'The concurrency limit on tag "{tag}" is 0 and will deadlock if the task '
                    "tries to run again."
                )
                return
        active = sorted((limit for limit in limits if limit.active), key=lambda limit: limit.name)
        if not active:
            return
        now = timezone.now()
        if not slots.slots_take(active, 1, now):
            fullest = max(active, key=lambda limit: limit.active_slots / limit.limit)
            max_wait = slots.TAG_SLOT_WAIT_SECONDS
            average = min(fullest.avg_slot_occupancy_seconds or max_wait, max_wait)
            names = ", ".join(limit.name.removeprefix(slots.TAG_PREFIX) for limit in active)
            self.delay_transition(
                delay_seconds=round(clamped_poisson_interval(average, DELAY_CLAMPING_FACTOR))
                if average > 0
                else 0,
                reason=f"Concurrency limit reached for tags: {names}",
            )
            return
        lease = slots.lease_create(
            limits=active,
            slots=1,
            ttl=slots.V1_LEASE_TTL,
            holder={"type": "task_run", "id": context.run.id},
            now=now,
        )
        self._lease_id = lease.id

    def cleanup(self, initial_state, validated_state, context) -> None:
        if getattr(self, "_lease_id", None) is not None:
            slots.leases_release([self._lease_id], timezone.now())
            self._lease_id = None


class ReleaseTaskConcurrencySlots(BaseUniversalTransform):
    def after_transition(self, context) -> None:
        if self.nullified_transition():
            return
        validated = context.validated_state_type
        if validated is None or validated in HOLDING_STATES:
            return
        tags = _tags(context)
        if tags:
            slots.task_run_tag_leases_release(tags=tags, task_run_id=context.run.id, now=timezone.now())
