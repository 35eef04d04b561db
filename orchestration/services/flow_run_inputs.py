"""Writing flow-run input (Prefect's ``models/flow_run_input.py``) and resuming a paused run with
input validated against the schema the paused flow stored (Prefect's ``resume_flow_run`` route)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, NotFound
from orchestration.models import FlowRun, FlowRunInput, Variable
from orchestration.models.states import StateType
from orchestration.persistence.run_lock import locked_run
from orchestration.schemas.hydration import needs_variables
from orchestration.schemas.parameters import parameters_check
from orchestration.schemas.responses import OrchestrationResult, SetStateStatus, abort_details
from orchestration.schemas.run_hydration import HydrationError, hydrate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services.orchestration import set_flow_run_state
from tenants.scoping import current_workspace_id

CIRCULAR_SCHEMA = "Invalid schema: Unable to validate schema with circular references."


def flow_run_input_create(
    *, flow_run_id: uuid.UUID, key: str, value: str, sender: str | None = None
) -> FlowRunInput:
    """409 when the run already has input under ``key``; 404 for a run this workspace lacks."""
    if not FlowRun.objects.filter(id=flow_run_id).exists():
        raise NotFound("Flow run not found")
    try:
        with transaction.atomic():
            return FlowRunInput.objects.create(
                workspace_id=current_workspace_id(),
                flow_run_id=flow_run_id,
                key=key,
                value=value,
                sender=sender,
            )
    except IntegrityError:
        if not FlowRun.objects.filter(id=flow_run_id).exists():  # deleted meanwhile
            raise NotFound("Flow run not found") from None
        raise Conflict("A flow run input with this key already exists.") from None


def flow_run_input_delete(*, flow_run_id: uuid.UUID, key: str) -> None:
    deleted, _ = FlowRunInput.objects.filter(flow_run_id=flow_run_id, key=key).delete()
    if not deleted:
        raise NotFound("Flow run input not found")


@dataclass
class ResumeResult:
    result: OrchestrationResult
    #: The moment the route started: a state written at or after it makes the answer a 201.
    started: dt.datetime


def _refused(state, reason: str) -> OrchestrationResult:
    # Prefect answers REJECT with ``StateAbortDetails`` here (and the run's current state).
    return OrchestrationResult(status=SetStateStatus.REJECT, state=state, details=abort_details(reason))


def _hydrated(run_input: dict[str, Any]) -> dict[str, Any]:
    """``run_input`` hydrated as Prefect's resume route does (workspace variables and templates
    rendered); raises ``HydrationError`` with Prefect's message."""
    variables: dict[str, Any] = {}
    if needs_variables(run_input):
        variables = dict(Variable.objects.values_list("name", "value"))
    return hydrate(run_input, variables=variables) or {}


def _input_refusal(run: FlowRun, keyset: dict[str, str], run_input: dict[str, Any]) -> str | None:
    """Why ``run_input`` cannot resume ``run``, or ``None`` when it conforms to the stored schema."""
    stored = FlowRunInput.objects.filter(flow_run_id=run.id, key=keyset.get("schema")).first()
    if stored is None:
        return "Run input schema not found."
    try:
        schema = json.loads(stored.value)
    except ValueError:
        return "Run input schema is not valid JSON."
    if not isinstance(schema, dict):
        return "Run input schema is not valid JSON."
    try:
        parameters_check(run_input, schema)
    except ValueError as error:
        message = str(error)
        return message if message == CIRCULAR_SCHEMA else f"Reason: {message}"
    return None


def flow_run_resume(
    *,
    flow_run_id: uuid.UUID,
    run_input: dict[str, Any] | None,
    actor: Any = None,
    client_version: str | None = None,
) -> ResumeResult:
    """Resume a PAUSED run: RUNNING for a blocking pause, ``Scheduled("Resuming")`` for a suspended
    one, through ``set_flow_run_state`` (whose rules refuse a pause past its timeout by failing the
    run). When the pause waits for input, ``run_input`` must conform to the schema the flow stored;
    it is stored under the keyset's ``response`` key once the transition is accepted."""
    started = timezone.now()
    with transaction.atomic():
        run = locked_run(flow_run_id)
        if run is None:
            raise NotFound("Flow run not found")
        state = run.state
        if state is None or state.type != StateType.PAUSED:
            result = OrchestrationResult(
                status=SetStateStatus.ABORT,
                state=None,
                details=abort_details("Cannot resume a flow run that is not paused."),
            )
            return ResumeResult(result, started)
        details = StateDetails.model_validate(state.state_details or {})
        keyset = details.run_input_keyset
        if keyset:
            try:
                run_input = _hydrated(run_input or {})
            except HydrationError as error:
                return ResumeResult(_refused(state, f"Error hydrating run input: {error}"), started)
            refusal = _input_refusal(run, keyset, run_input)
            if refusal is not None:
                return ResumeResult(_refused(state, refusal), started)
        if details.pause_reschedule:
            proposal = StateCreate(
                type=StateType.SCHEDULED,
                name="Resuming",
                state_details=StateDetails(scheduled_time=timezone.now()),
            )
        else:
            proposal = StateCreate(type=StateType.RUNNING, name="Running")
        result = set_flow_run_state(
            flow_run_id=flow_run_id, state=proposal, actor=actor, client_version=client_version
        )
        if keyset and keyset.get("response") and run_input and result.status == SetStateStatus.ACCEPT:
            try:
                with transaction.atomic():
                    FlowRunInput.objects.create(
                        workspace_id=current_workspace_id(),
                        flow_run_id=flow_run_id,
                        key=keyset["response"],
                        value=json.dumps(run_input),
                    )
            except IntegrityError:
                raise Conflict("A flow run input with this key already exists.") from None
        return ResumeResult(result, started)
