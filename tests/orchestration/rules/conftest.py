"""Fixtures for orchestration rule tests: a flow run in any initial state (Prefect's
``initialize_orchestration``), and the events the engine records."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from orchestration.events import services as event_services
from orchestration.models import Flow, FlowRun, FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import (
    ALL_ORCHESTRATION_STATES,
    OrchestrationContext,
    SetStateStatus,
    default_state_name,
    normalize_proposal,
)
from orchestration.schemas.states import StateCreate, StateDetails
from tenants.scoping import workspace_scope

#: Every (initial, proposed) pair the service can see; a proposal is never "no state".
ALL_TRANSITIONS: list[tuple[StateType | None, StateType]] = [
    (initial, proposed) for initial, proposed in itertools.product([None, *StateType], list(StateType))
]
assert {None, *StateType} == set(ALL_ORCHESTRATION_STATES)

_names = itertools.count()


@pytest.fixture
def workspace(tenant) -> Iterator[Any]:
    """The tenant's workspace, with its scope set for the whole test."""
    with workspace_scope(tenant.workspace.id):
        yield tenant.workspace


@pytest.fixture(autouse=True)
def recorded_events(monkeypatch) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """``(workspace_id, event)`` for every event the engine asked to record."""
    recorded: list[tuple[uuid.UUID, dict[str, Any]]] = []

    def record(*, workspace_id: uuid.UUID, event: dict[str, Any]) -> None:
        recorded.append((workspace_id, event))

    monkeypatch.setattr(event_services, "event_record_on_commit", record)
    return recorded


@pytest.fixture
def flow(workspace) -> Flow:
    return Flow.objects.create(name=f"flow-{next(_names)}", tags=["flow-tag"])


MakeFlowRun = Callable[..., FlowRun]


@pytest.fixture
def make_flow_run(workspace, flow) -> MakeFlowRun:
    """``make_flow_run(initial_state_type=None, *, initial_name=..., initial_details={...},
    initial_data=..., initial_message=..., initial_timestamp=..., **flow_run_fields)``: a run whose
    current state row is as given (no state for ``None``), reloaded as the service loads it."""

    def make(
        initial_state_type: StateType | None = None,
        *,
        initial_name: str | None = None,
        initial_details: dict[str, Any] | None = None,
        initial_data: Any = None,
        initial_message: str | None = None,
        initial_timestamp: dt.datetime | None = None,
        **run_fields: Any,
    ) -> FlowRun:
        run = FlowRun.objects.create(flow=flow, name=f"run-{next(_names)}", **run_fields)
        if initial_state_type is not None:
            timestamp = initial_timestamp or timezone.now() - dt.timedelta(seconds=5)
            details = StateDetails(flow_run_id=run.id, **(initial_details or {}))
            if initial_state_type == StateType.SCHEDULED and details.scheduled_time is None:
                details.scheduled_time = timestamp
            state = FlowRunState.objects.create(
                id=uuid.uuid4(),
                flow_run=run,
                type=StateType(initial_state_type).value,
                name=initial_name or default_state_name(initial_state_type),
                timestamp=timestamp,
                message=initial_message,
                data=initial_data,
                state_details=details.model_dump(mode="json"),
            )
            run.state = state
            run.state_type = state.type
            run.state_name = state.name
            run.state_timestamp = state.timestamp
            run.save()
        return FlowRun.objects.select_related("state", "flow").get(id=run.id)

    return make


InitializeOrchestration = Callable[..., OrchestrationContext]


def proposal(
    state_type: StateType,
    *,
    name: str | None = None,
    message: str | None = None,
    data: Any = None,
    **details: Any,
) -> StateCreate:
    return StateCreate(
        type=state_type, name=name, message=message, data=data, state_details=StateDetails(**details)
    )


@pytest.fixture
def initialize_orchestration(make_flow_run) -> InitializeOrchestration:
    """``initialize_orchestration(initial_type, proposed_type, *, proposed_name=...,
    proposed_details={...}, proposed_data=..., proposed_message=..., <make_flow_run options>)``:
    an :class:`OrchestrationContext` for that transition, as the service builds it."""

    def initialize(
        initial_state_type: StateType | None,
        proposed_state_type: StateType | None,
        *,
        proposed_name: str | None = None,
        proposed_details: dict[str, Any] | None = None,
        proposed_data: Any = None,
        proposed_message: str | None = None,
        **run_options: Any,
    ) -> OrchestrationContext:
        run = make_flow_run(initial_state_type, **run_options)
        proposed = None
        if proposed_state_type is not None:
            proposed = normalize_proposal(
                proposal(
                    proposed_state_type,
                    name=proposed_name,
                    message=proposed_message,
                    data=proposed_data,
                    **(proposed_details or {}),
                )
            )
        return OrchestrationContext(run=run, initial_state=run.state, proposed_state=proposed)

    return initialize


@pytest.fixture
def assert_rule_ignores(initialize_orchestration) -> Callable[..., None]:
    """``assert_rule_ignores(Rule, transitions)``: entering ``Rule`` alone for each transition
    leaves the context untouched (no hook fires, the proposal is accepted as is)."""

    def check(rule: type, transitions: list[tuple[StateType | None, StateType]]) -> None:
        assert transitions
        for initial_type, proposed_type in transitions:
            context = initialize_orchestration(initial_type, proposed_type)
            before = context.proposed_state.model_copy(deep=True)
            policy_before = dict(context.run.empirical_policy or {})
            with rule(context, *context.intended_transition):
                pass
            transition = (initial_type, proposed_type)
            assert context.rule_signature == [], transition
            assert context.finalization_signature == [], transition
            assert context.response_status == SetStateStatus.ACCEPT, transition
            assert context.proposed_state == before, transition
            assert context.run.empirical_policy == policy_before, transition

    return check


def governed(rule: type) -> set[tuple[StateType | None, StateType]]:
    return {(i, p) for i, p in ALL_TRANSITIONS if i in rule.FROM_STATES and p in rule.TO_STATES}


def ungoverned(rule: type) -> list[tuple[StateType | None, StateType]]:
    return [pair for pair in ALL_TRANSITIONS if pair not in governed(rule)]
