"""Deployment concurrency rules, each on its own (and not firing for other transitions), then a
limit of 1 with two runs through ``set_flow_run_state``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.utils import timezone

from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2, Deployment, FlowRun
from orchestration.models.states import StateType
from orchestration.policies import CoreFlowPolicy, MinimalFlowPolicy
from orchestration.rules.base import BaseOrchestrationRule, SetStateStatus, apply_rules
from orchestration.rules.concurrency import (
    ReleaseFlowConcurrencySlots,
    RemoveDeploymentConcurrencyLeaseForOldClientVersions,
    SecureFlowConcurrencySlots,
    ValidateDeploymentConcurrencyAtRunning,
)
from orchestration.rules.retries import RetryFailedFlows
from orchestration.services import concurrency as services
from orchestration.services.orchestration import OrchestrationResult, set_flow_run_state
from tests.orchestration.rules.conftest import ALL_TRANSITIONS, proposal, ungoverned

pytestmark = pytest.mark.django_db

_names = iter(range(10**6))


@pytest.fixture
def make_deployment(workspace, flow):
    def make(limit: int | None = 1, **fields: Any) -> Deployment:
        return Deployment.objects.create(
            flow=flow, name=f"dep-{next(_names)}", concurrency_limit=limit, **fields
        )

    return make


def backing(deployment: Deployment) -> ConcurrencyLimitV2:
    return ConcurrencyLimitV2.objects.get(name=f"deployment:{deployment.id}")


def slots(deployment: Deployment) -> int:
    return backing(deployment).active_slots


def lease_of(context_or_state) -> uuid.UUID | None:
    details = context_or_state.state_details
    value = details.get("deployment_concurrency_lease_id") if isinstance(details, dict) else None
    return uuid.UUID(value) if value else None


def take_slot(deployment: Deployment, seconds: float = 300) -> ConcurrencyLease:
    lease = services.deployment_slot_acquire(
        limit=services.deployment_concurrency_limit(deployment=deployment),
        flow_run_id=uuid.uuid4(),
        ttl=dt.timedelta(seconds=seconds),
    )
    assert lease is not None
    return lease


class TestSecureFlowConcurrencySlots:
    def test_a_run_takes_a_slot_with_a_lease_on_its_way_to_pending(
        self, initialize_orchestration, make_deployment
    ):
        deployment = make_deployment(2)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.ACCEPT
        lease_id = lease_of(context.validated_state)
        lease = ConcurrencyLease.objects.get(id=lease_id)
        assert lease.metadata == {"holder": {"type": "flow_run", "id": str(context.run.id)}}
        assert 290 < (lease.expiration - timezone.now()).total_seconds() <= 300
        assert list(lease.limits.values_list("name", flat=True)) == [f"deployment:{deployment.id}"]
        assert (slots(deployment), backing(deployment).limit) == (1, 2)

    def test_the_grace_period_sets_the_first_lease(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(
            1, concurrency_options={"collision_strategy": "ENQUEUE", "grace_period_seconds": 900}
        )
        context = initialize_orchestration(None, StateType.PENDING, deployment_id=deployment.id)
        apply_rules(context, [SecureFlowConcurrencySlots])
        lease = ConcurrencyLease.objects.get(id=lease_of(context.validated_state))
        assert 890 < (lease.expiration - timezone.now()).total_seconds() <= 900

    def test_without_a_free_slot_the_run_waits_in_awaiting_concurrency_slot(
        self, initialize_orchestration, make_deployment
    ):
        deployment = make_deployment(1)
        take_slot(deployment)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        before = timezone.now()
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.REJECT
        assert context.response_details["reason"] == "Deployment concurrency limit reached."
        state = context.validated_state
        assert (state.type, state.name) == ("SCHEDULED", "AwaitingConcurrencySlot")
        scheduled = context.proposed_state.state_details.scheduled_time
        assert before + dt.timedelta(seconds=29) <= scheduled <= timezone.now() + dt.timedelta(seconds=30)
        assert lease_of(state) is None
        assert slots(deployment) == 1

    def test_cancel_new_cancels_the_run(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(1, concurrency_options={"collision_strategy": "CANCEL_NEW"})
        take_slot(deployment)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.REJECT
        assert (context.validated_state.type, context.validated_state.message) == (
            "CANCELLED",
            "Deployment concurrency limit reached.",
        )

    def test_a_limit_of_zero_aborts(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(0)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.ABORT
        assert "deadlock" in context.response_details["reason"]
        assert context.validated_state.type == "SCHEDULED"  # nothing written

    @pytest.mark.parametrize("case", ["no deployment", "no limit", "deployment gone", "limit switched off"])
    def test_runs_without_a_limit_pass_freely(self, initialize_orchestration, make_deployment, case):
        run_fields: dict[str, Any] = {}
        if case == "no limit":
            run_fields["deployment_id"] = make_deployment(None).id
        elif case == "deployment gone":
            run_fields["deployment_id"] = uuid.uuid4()
        elif case == "limit switched off":
            deployment = make_deployment(1)
            take_slot(deployment)
            ConcurrencyLimitV2.objects.filter(name=f"deployment:{deployment.id}").update(active=False)
            run_fields["deployment_id"] = deployment.id
        context = initialize_orchestration(StateType.SCHEDULED, StateType.PENDING, **run_fields)
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.ACCEPT
        assert lease_of(context.validated_state) is None
        assert ConcurrencyLease.objects.count() == (1 if case == "limit switched off" else 0)

    def test_the_backing_limit_follows_the_deployment(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(1)
        apply_rules(
            initialize_orchestration(StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id),
            [SecureFlowConcurrencySlots],
        )
        Deployment.objects.filter(id=deployment.id).update(concurrency_limit=3)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.ACCEPT
        assert (backing(deployment).limit, slots(deployment)) == (3, 2)

    def test_the_slot_goes_back_when_another_rule_changes_the_transition(
        self, initialize_orchestration, make_deployment
    ):
        class RejectAfterwards(BaseOrchestrationRule):
            FROM_STATES = frozenset({StateType.SCHEDULED})
            TO_STATES = frozenset({StateType.PENDING})

            def before_transition(self, initial_state, proposed_state, context):
                self.reject_transition(state=None, reason="not now")

        deployment = make_deployment(1)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        apply_rules(context, [SecureFlowConcurrencySlots, RejectAfterwards])
        assert context.response_status == SetStateStatus.REJECT
        assert slots(deployment) == 0
        assert not ConcurrencyLease.objects.exists()

    def test_workers_that_manage_slots_themselves_are_left_alone(
        self, initialize_orchestration, make_deployment
    ):
        deployment = make_deployment(1)
        take_slot(deployment)
        context = initialize_orchestration(
            StateType.SCHEDULED, StateType.PENDING, deployment_id=deployment.id
        )
        context.parameters["client_version"] = "3.0.2"
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        assert_rule_ignores(SecureFlowConcurrencySlots, ungoverned(SecureFlowConcurrencySlots))

    @pytest.mark.parametrize("initial", [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])
    def test_a_run_already_holding_a_slot_takes_no_second_one(
        self, initialize_orchestration, make_deployment, initial
    ):
        deployment = make_deployment(1)
        context = initialize_orchestration(initial, StateType.PENDING, deployment_id=deployment.id)
        apply_rules(context, [SecureFlowConcurrencySlots])
        assert not ConcurrencyLease.objects.exists()


class TestValidateDeploymentConcurrencyAtRunning:
    def _pending(self, initialize_orchestration, deployment, lease_id, **options):
        return initialize_orchestration(
            StateType.PENDING,
            StateType.RUNNING,
            deployment_id=deployment.id,
            initial_details={"deployment_concurrency_lease_id": lease_id},
            **options,
        )

    def test_the_lease_is_renewed_and_carried(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(
            1, concurrency_options={"collision_strategy": "ENQUEUE", "grace_period_seconds": 600}
        )
        lease = take_slot(deployment, seconds=30)
        context = self._pending(initialize_orchestration, deployment, lease.id)
        apply_rules(context, [ValidateDeploymentConcurrencyAtRunning])
        assert context.response_status == SetStateStatus.ACCEPT
        assert lease_of(context.validated_state) == lease.id
        lease.refresh_from_db()
        assert (lease.expiration - timezone.now()).total_seconds() > 590

    def test_a_reaped_lease_is_taken_again_when_a_slot_is_free(
        self, initialize_orchestration, make_deployment
    ):
        deployment = make_deployment(1)
        lease = take_slot(deployment)
        services.lease_release(lease_id=lease.id)  # the sweep got there first
        context = self._pending(initialize_orchestration, deployment, lease.id)
        apply_rules(context, [ValidateDeploymentConcurrencyAtRunning])
        assert context.response_status == SetStateStatus.ACCEPT
        new_lease = lease_of(context.validated_state)
        assert new_lease not in (None, lease.id)
        assert ConcurrencyLease.objects.filter(id=new_lease).exists()
        assert slots(deployment) == 1

    def test_a_reaped_lease_without_a_free_slot_cancels_the_run(
        self, initialize_orchestration, make_deployment
    ):
        deployment = make_deployment(1)
        lease = take_slot(deployment)
        services.lease_release(lease_id=lease.id)
        take_slot(deployment)  # someone else took the freed slot
        context = self._pending(initialize_orchestration, deployment, lease.id)
        apply_rules(context, [ValidateDeploymentConcurrencyAtRunning])
        assert context.response_status == SetStateStatus.REJECT
        assert context.validated_state.type == "CANCELLED"
        assert "slot lost during provisioning" in context.validated_state.message
        assert slots(deployment) == 1

    def test_old_clients_are_not_validated(self, initialize_orchestration, make_deployment):
        deployment = make_deployment(1)
        lease = take_slot(deployment)
        services.lease_release(lease_id=lease.id)
        take_slot(deployment)
        context = self._pending(initialize_orchestration, deployment, lease.id)
        context.parameters["client_version"] = "3.4.10"
        apply_rules(context, [ValidateDeploymentConcurrencyAtRunning])
        assert context.response_status == SetStateStatus.ACCEPT

    def test_a_slot_taken_again_goes_back_if_the_run_does_not_start(
        self, initialize_orchestration, make_deployment
    ):
        class DelayAfterwards(BaseOrchestrationRule):
            FROM_STATES = frozenset({StateType.PENDING})
            TO_STATES = frozenset({StateType.RUNNING})

            def before_transition(self, initial_state, proposed_state, context):
                self.delay_transition(5, reason="Scheduled time is in the future")

        deployment = make_deployment(1)
        lease = take_slot(deployment)
        services.lease_release(lease_id=lease.id)
        context = self._pending(initialize_orchestration, deployment, lease.id)
        apply_rules(context, [ValidateDeploymentConcurrencyAtRunning, DelayAfterwards])
        assert context.response_status == SetStateStatus.WAIT
        assert slots(deployment) == 0

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        assert_rule_ignores(
            ValidateDeploymentConcurrencyAtRunning, ungoverned(ValidateDeploymentConcurrencyAtRunning)
        )


class TestRemoveDeploymentConcurrencyLeaseForOldClientVersions:
    @pytest.mark.parametrize(
        ("version", "long_lived"), [("3.4.10", True), ("2.20.0", True), ("3.9.1", False), (None, False)]
    )
    def test_old_clients_keep_their_slot_until_the_run_ends(
        self, initialize_orchestration, make_deployment, version, long_lived
    ):
        deployment = make_deployment(1)
        lease = take_slot(deployment)
        context = initialize_orchestration(
            StateType.PENDING,
            StateType.RUNNING,
            deployment_id=deployment.id,
            initial_details={"deployment_concurrency_lease_id": lease.id},
        )
        if version:
            context.parameters["client_version"] = version
        apply_rules(context, [RemoveDeploymentConcurrencyLeaseForOldClientVersions])
        lease.refresh_from_db()
        assert ((lease.expiration - timezone.now()).days > 365) is long_lived

    def test_does_not_fire_for_other_transitions(self, assert_rule_ignores):
        rule = RemoveDeploymentConcurrencyLeaseForOldClientVersions
        assert_rule_ignores(rule, ungoverned(rule))


HOLDING = {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING}


class TestReleaseFlowConcurrencySlots:
    def _holding(self, initialize_orchestration, make_deployment, initial, proposed, **options):
        deployment = make_deployment(1)
        lease = take_slot(deployment)
        context = initialize_orchestration(
            initial,
            proposed,
            deployment_id=deployment.id,
            initial_details={"deployment_concurrency_lease_id": lease.id},
            **options,
        )
        return deployment, lease, context

    @pytest.mark.parametrize(
        ("initial", "proposed", "released"),
        [
            (initial, proposed, initial in HOLDING and proposed not in HOLDING)
            for initial, proposed in ALL_TRANSITIONS
            if initial is not None
        ],
    )
    def test_leaving_the_holding_states_releases_the_lease(
        self, initialize_orchestration, make_deployment, initial, proposed, released
    ):
        deployment, lease, context = self._holding(
            initialize_orchestration, make_deployment, initial, proposed
        )
        apply_rules(context, [ReleaseFlowConcurrencySlots])
        assert ConcurrencyLease.objects.filter(id=lease.id).exists() is not released
        assert slots(deployment) == (0 if released else 1)

    def test_the_in_process_retry_keeps_the_slot(self, initialize_orchestration, make_deployment):
        deployment, lease, context = self._holding(
            initialize_orchestration,
            make_deployment,
            StateType.RUNNING,
            StateType.FAILED,
            empirical_policy={"retries": 1, "retry_delay": 0},
            run_count=1,
        )
        apply_rules(context, [RetryFailedFlows, ReleaseFlowConcurrencySlots])
        assert context.validated_state.name == "AwaitingRetry"
        assert slots(deployment) == 1

    def test_an_awaiting_retry_proposed_directly_releases(self, initialize_orchestration, make_deployment):
        deployment, lease, context = self._holding(
            initialize_orchestration,
            make_deployment,
            StateType.RUNNING,
            StateType.SCHEDULED,
            proposed_name="AwaitingRetry",
        )
        apply_rules(context, [ReleaseFlowConcurrencySlots])
        assert slots(deployment) == 0

    def test_nothing_is_released_when_nothing_is_written(self, initialize_orchestration, make_deployment):
        class Abort(BaseOrchestrationRule):
            FROM_STATES = frozenset({StateType.RUNNING})
            TO_STATES = frozenset({StateType.COMPLETED})

            def before_transition(self, initial_state, proposed_state, context):
                self.abort_transition("no")

        deployment, lease, context = self._holding(
            initialize_orchestration, make_deployment, StateType.RUNNING, StateType.COMPLETED
        )
        apply_rules(context, [Abort, ReleaseFlowConcurrencySlots])
        assert slots(deployment) == 1

    def test_a_lease_already_reaped_is_not_released_twice(self, initialize_orchestration, make_deployment):
        deployment, lease, context = self._holding(
            initialize_orchestration, make_deployment, StateType.RUNNING, StateType.COMPLETED
        )
        services.lease_release(lease_id=lease.id)
        take_slot(deployment)  # another run holds the slot now
        apply_rules(context, [ReleaseFlowConcurrencySlots])
        assert slots(deployment) == 1


def test_the_rules_sit_where_prefect_puts_them():
    core = [rule.__name__ for rule in CoreFlowPolicy.priority()]
    assert core[
        core.index("PreventPendingTransitions") + 1 : core.index("EnsureOnlyScheduledFlowsMarkedLate")
    ] == [
        "ValidateDeploymentConcurrencyAtRunning",
        "SecureFlowConcurrencySlots",
        "RemoveDeploymentConcurrencyLeaseForOldClientVersions",
    ]
    assert core[-2:] == ["InstrumentFlowRunStateTransitions", "ReleaseFlowConcurrencySlots"]
    assert [rule.__name__ for rule in MinimalFlowPolicy.priority()][-1] == "ReleaseFlowConcurrencySlots"


# --- through the service ------------------------------------------------------------------------------


def propose(
    run: FlowRun, state_type: StateType, *, force: bool = False, **kwargs: Any
) -> OrchestrationResult:
    return set_flow_run_state(flow_run_id=run.id, state=proposal(state_type, **kwargs), force=force)


class TestALimitOfOne:
    def test_the_second_run_waits_until_the_first_completes(self, make_flow_run, make_deployment):
        deployment = make_deployment(1)
        first = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
        second = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)

        taken = propose(first, StateType.PENDING)
        assert (taken.status, taken.state.type) == (SetStateStatus.ACCEPT, "PENDING")
        lease_id = lease_of(taken.state)
        assert lease_id is not None

        waiting = propose(second, StateType.PENDING)
        assert waiting.status == SetStateStatus.REJECT
        assert (waiting.state.type, waiting.state.name) == ("SCHEDULED", "AwaitingConcurrencySlot")
        # Still full while the first one runs; its lease is carried to RUNNING.
        running = propose(first, StateType.RUNNING)
        assert running.status == SetStateStatus.ACCEPT and lease_of(running.state) == lease_id
        assert propose(second, StateType.PENDING).state.name == "AwaitingConcurrencySlot"

        done = propose(first, StateType.COMPLETED)
        assert done.status == SetStateStatus.ACCEPT
        assert slots(deployment) == 0 and not ConcurrencyLease.objects.filter(id=lease_id).exists()

        admitted = propose(second, StateType.PENDING)
        assert (admitted.status, admitted.state.type) == (SetStateStatus.ACCEPT, "PENDING")
        assert lease_of(admitted.state) not in (None, lease_id)
        assert slots(deployment) == 1

    def test_a_crashed_run_frees_its_slot_when_its_lease_expires(self, make_flow_run, make_deployment):
        deployment = make_deployment(1)
        crashed = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
        waiting = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
        lease_id = lease_of(propose(crashed, StateType.PENDING).state)
        propose(crashed, StateType.RUNNING)
        assert propose(waiting, StateType.PENDING).state.name == "AwaitingConcurrencySlot"

        # The process died: nobody renews, the sweep reclaims the slot.
        ConcurrencyLease.objects.filter(id=lease_id).update(
            expiration=timezone.now() - dt.timedelta(seconds=1)
        )
        assert services.leases_expire() == 1
        assert propose(waiting, StateType.PENDING).status == SetStateStatus.ACCEPT
        # The crashed run is marked crashed later: that releases nothing more.
        propose(crashed, StateType.CRASHED)
        assert slots(deployment) == 1

    def test_a_forced_cancellation_releases_the_slot(self, make_flow_run, make_deployment):
        deployment = make_deployment(1)
        run = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id)
        propose(run, StateType.PENDING)
        propose(run, StateType.RUNNING)
        assert propose(run, StateType.CANCELLED, force=True).status == SetStateStatus.ACCEPT
        assert slots(deployment) == 0

    def test_an_in_process_retry_keeps_the_slot_until_the_run_ends(self, make_flow_run, make_deployment):
        deployment = make_deployment(1)
        run = make_flow_run(StateType.SCHEDULED, deployment_id=deployment.id, empirical_policy={"retries": 1})
        lease_id = lease_of(propose(run, StateType.PENDING).state)
        propose(run, StateType.RUNNING)
        retry = propose(run, StateType.FAILED)
        assert (retry.status, retry.state.name) == (SetStateStatus.REJECT, "AwaitingRetry")
        assert lease_of(retry.state) == lease_id and slots(deployment) == 1
        assert lease_of(propose(run, StateType.RUNNING).state) == lease_id
        propose(run, StateType.COMPLETED)
        assert slots(deployment) == 0
