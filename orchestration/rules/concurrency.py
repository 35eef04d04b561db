"""Deployment concurrency: a deployment with ``concurrency_limit`` N lets at most N of its runs
hold a slot between PENDING and a final (or otherwise released) state.

Mirrors Prefect's ``core_policy.py``:

* :class:`SecureFlowConcurrencySlots` — a run proposing PENDING takes a slot under a lease whose
  id goes into ``state_details.deployment_concurrency_lease_id``; without a free slot the run is
  rejected into SCHEDULED ``AwaitingConcurrencySlot`` (collision strategy ENQUEUE) or CANCELLED
  (CANCEL_NEW).
* :class:`ValidateDeploymentConcurrencyAtRunning` — PENDING → RUNNING renews the lease; a lease
  that expired meanwhile (slow infrastructure) is re-acquired if a slot is free, else the run is
  cancelled.
* :class:`RemoveDeploymentConcurrencyLeaseForOldClientVersions` — clients older than 3.4.11 do not
  renew leases; their lease is made long-lived at RUNNING and released when the run finishes.
* :class:`ReleaseFlowConcurrencySlots` — leaving PENDING/RUNNING/CANCELLING for any other state
  releases the lease (except the in-process retry, which keeps its slot).

The client renews the lease while the run executes; a crashed run stops renewing and
:func:`orchestration.services.concurrency.leases_expire` frees its slot.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from django.utils import timezone

from orchestration.models import Deployment, FlowRunState
from orchestration.models.states import StateType
from orchestration.persistence import concurrency as slots
from orchestration.persistence.write_batch import save_fields
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    BaseOrchestrationRule,
    BaseUniversalTransform,
    OrchestrationContext,
    SetStateStatus,
    new_state,
)
from orchestration.schemas.states import StateCreate

#: The first client version that renews deployment concurrency leases.
MIN_CLIENT_VERSION_FOR_LEASING = (3, 4, 11)
#: Early 3.0 workers took deployment slots themselves.
WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY = frozenset(
    {"3.0.0rc20", "3.0.0", "3.0.1", "3.0.2", "3.0.3"}
)
HOLDING_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})


def _client_version(context: OrchestrationContext) -> str | None:
    """The client's version when the caller passed it (``parameters["client_version"]``, from the
    ``User-Agent: prefect/<version>`` header); None when unknown, taken to be a current client."""
    value = context.parameters.get("client_version")
    return str(value) if value else None


def _version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        return (0,)
    return tuple(int(part or 0) for part in match.groups())


def _client_cannot_renew(context: OrchestrationContext) -> bool:
    version = _client_version(context)
    return version is not None and _version_tuple(version) < MIN_CLIENT_VERSION_FOR_LEASING


def _deployment(context: OrchestrationContext) -> Deployment | None:
    if not context.run.deployment_id:
        return None
    return Deployment.objects.filter(id=context.run.deployment_id).first()


class SecureFlowConcurrencySlots(BaseOrchestrationRule):
    """A run of a deployment with a concurrency limit takes a slot on its way to PENDING, so a
    worker secures the slot before it provisions infrastructure."""

    FROM_STATES = ALL_ORCHESTRATION_STATES - HOLDING_STATES
    TO_STATES = frozenset({StateType.PENDING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        self._acquired_lease_id: uuid.UUID | None = None
        if proposed_state is None or not context.run.deployment_id:
            return
        if _client_version(context) in WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY:
            return
        # A run whose deployment is gone (the id is not a foreign key) has no limit to honour.
        deployment = _deployment(context)
        if deployment is None:
            return
        limit = slots.deployment_concurrency_limit(deployment=deployment)
        if limit is None or not limit.active:
            return
        if limit.limit == 0:
            self.abort_transition(
                "The deployment concurrency limit is 0. The flow will deadlock if submitted again."
            )
            return

        ttl = dt.timedelta(seconds=slots.deployment_lease_seconds(deployment))
        lease = slots.deployment_slot_acquire(limit=limit, flow_run_id=context.run.id, ttl=ttl)
        if lease is not None:
            proposed_state.state_details.deployment_concurrency_lease_id = lease.id
            self._acquired_lease_id = lease.id
            return

        reason = "Deployment concurrency limit reached."
        if slots.deployment_collision_strategy(deployment) == "CANCEL_NEW":
            self.reject_transition(state=new_state(StateType.CANCELLED, message=reason), reason=reason)
        else:
            wait = dt.timedelta(seconds=slots.DEPLOYMENT_SLOT_WAIT_SECONDS)
            self.reject_transition(
                state=new_state(
                    StateType.SCHEDULED,
                    name="AwaitingConcurrencySlot",
                    scheduled_time=timezone.now() + wait,
                ),
                reason=reason,
            )

    def cleanup(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        # Another rule changed the transition after the slot was taken: give it back.
        lease_id = getattr(self, "_acquired_lease_id", None)
        if lease_id is None:
            return
        slots.lease_release(lease_id=lease_id)
        if validated_state is not None:
            details = dict(validated_state.state_details or {})
            if details.get("deployment_concurrency_lease_id") == str(lease_id):
                details["deployment_concurrency_lease_id"] = None
                validated_state.state_details = details
                save_fields(validated_state, ["state_details"])


class ValidateDeploymentConcurrencyAtRunning(BaseOrchestrationRule):
    """PENDING → RUNNING renews the run's lease for the grace period. If the lease expired while
    the infrastructure started, the slot is taken again when one is free; otherwise the run is
    cancelled (its infrastructure exists, so it cannot wait)."""

    FROM_STATES = frozenset({StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        self._acquired_lease_id: uuid.UUID | None = None
        if initial_state is None or proposed_state is None:
            return
        lease_id = context.initial_details.deployment_concurrency_lease_id
        proposed_state.state_details.deployment_concurrency_lease_id = lease_id
        if lease_id is None or _client_cannot_renew(context):
            return
        deployment = _deployment(context)
        if deployment is None:
            return
        limit = slots.deployment_concurrency_limit(deployment=deployment)
        if limit is None:
            return
        ttl = dt.timedelta(seconds=slots.deployment_lease_seconds(deployment))
        if slots.lease_renew(lease_id=lease_id, ttl=ttl):
            return
        lease = slots.deployment_slot_acquire(limit=limit, flow_run_id=context.run.id, ttl=ttl)
        if lease is not None:
            proposed_state.state_details.deployment_concurrency_lease_id = lease.id
            self._acquired_lease_id = lease.id
            return
        self.reject_transition(
            state=new_state(
                StateType.CANCELLED,
                message="Deployment concurrency slot lost during provisioning - "
                "no slots available to continue execution",
            ),
            reason="Deployment concurrency limit reached after lease expiry.",
        )

    def cleanup(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        # The run did not start after all (e.g. it must wait for its scheduled time): a slot
        # taken again here goes back; a renewal is harmless.
        lease_id = getattr(self, "_acquired_lease_id", None)
        if lease_id is not None:
            slots.lease_release(lease_id=lease_id)


class RemoveDeploymentConcurrencyLeaseForOldClientVersions(BaseOrchestrationRule):
    """A client that cannot renew its lease would lose its slot mid-run: once the run starts
    (or is cancelled while pending) its lease no longer expires; the run's final state releases
    it. (Prefect revokes the lease and decrements the slot by hand at the end.)"""

    FROM_STATES = frozenset({StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING, StateType.CANCELLING})

    def after_transition(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or not _client_cannot_renew(context):
            return
        lease_id = context.initial_details.deployment_concurrency_lease_id
        if lease_id is not None:
            slots.lease_renew(lease_id=lease_id, ttl=slots.UNRENEWABLE_LEASE_TTL)


class ReleaseFlowConcurrencySlots(BaseUniversalTransform):
    """Leaving PENDING, RUNNING or CANCELLING for a state that does not hold a slot releases the
    run's deployment lease. The in-process retry (RUNNING → FAILED rejected into AwaitingRetry)
    keeps it: the client keeps renewing it across the retry delay."""

    def after_transition(self, context: OrchestrationContext) -> None:
        if self.nullified_transition():
            return
        initial_type = context.initial_state_type
        proposed_type = context.proposed_state_type
        if initial_type not in HOLDING_STATES or proposed_type in HOLDING_STATES:
            return
        proposal = context.proposed_state
        if (
            proposed_type == StateType.SCHEDULED
            and proposal is not None
            and proposal.name == "AwaitingRetry"
            and context.response_status == SetStateStatus.REJECT
        ):
            return
        if not context.run.deployment_id:
            return
        lease_id = context.initial_details.deployment_concurrency_lease_id
        if lease_id is not None:
            # A lease already gone (expired and swept) has given its slot back.
            slots.lease_release(lease_id=lease_id)
