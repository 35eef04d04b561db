"""The orchestration machinery: a context that carries one proposed transition, rules that govern
it, universal transforms that do the bookkeeping, and policies that order them.

It mirrors Prefect's server (``prefect/server/orchestration/rules.py``):

* An :class:`OrchestrationContext` holds the locked run, its current state row (``None`` for a new
  run), the proposal (a :class:`StateCreate`, which rules may mutate), and the response being built.
* A :class:`BaseOrchestrationRule` declares ``FROM_STATES``/``TO_STATES``. Entered as a context
  manager, it fires ``before_transition`` when the intended transition is one it governs; it may
  then mutate the proposal, ``reject_transition``, ``delay_transition`` (WAIT) or
  ``abort_transition``. On exit ``after_transition`` fires if the transition is still the one it
  saw, or ``cleanup`` if another rule changed it (the rule "fizzled").
* A :class:`BaseUniversalTransform` fires on every transition; transforms check
  ``nullified_transition()`` themselves.
* Rules are entered in policy order with an :class:`contextlib.ExitStack`; the proposal is then
  validated (a new state row written) and the rules exit in reverse order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from types import TracebackType
from typing import Any, ClassVar

from django.utils import timezone

from orchestration.models import FlowRun, FlowRunState
from orchestration.models.states import TERMINAL_STATE_TYPES, StateType
from orchestration.persistence.write_batch import insert_or_defer
from orchestration.schemas.core import FlowRunPolicy
from orchestration.schemas.responses import (
    SetStateStatus,
    abort_details,
    accept_details,
    reject_details,
    wait_details,
)
from orchestration.schemas.states import StateCreate, StateDetails

logger = logging.getLogger(__name__)

#: Every state type a transition can start from or go to; ``None`` is "no state".
ALL_ORCHESTRATION_STATES: frozenset[StateType | None] = frozenset({*StateType, None})
TERMINAL_STATES: frozenset[StateType | None] = frozenset(TERMINAL_STATE_TYPES)


class OrchestrationError(RuntimeError):
    """A rule asked for something the machinery cannot do (a programming error)."""


# --- states -----------------------------------------------------------------------------------


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, dt.UTC)
    return value


def default_state_name(state_type: StateType | str) -> str:
    """Prefect's name for a state given only its type: ``CANCELLING`` → ``Cancelling``."""
    return " ".join(part.capitalize() for part in StateType(state_type).value.split("_"))


def normalize_proposal(state: StateCreate, *, now: dt.datetime | None = None) -> StateCreate:
    """A private copy of ``state`` completed the way Prefect's ``StateCreate`` validators and
    ``State`` defaults complete it: a name from the type, a scheduled time for SCHEDULED states,
    and a server-side timestamp (a timestamp sent by the client is ignored)."""
    proposal = state.model_copy(deep=True)
    now = now or timezone.now()
    if proposal.name is None:
        proposal.name = default_state_name(proposal.type)
    details = proposal.state_details
    details.scheduled_time = _aware(details.scheduled_time)
    details.pause_timeout = _aware(details.pause_timeout)
    details.cache_expiration = _aware(details.cache_expiration)
    if proposal.type == StateType.SCHEDULED and details.scheduled_time is None:
        details.scheduled_time = now
    proposal.timestamp = now
    return proposal


def new_state(
    state_type: StateType,
    *,
    name: str | None = None,
    message: str | None = None,
    data: Any = None,
    **details: Any,
) -> StateCreate:
    """A state a rule proposes instead of the client's (Prefect's ``states.Failed()`` & co.)."""
    return normalize_proposal(
        StateCreate(
            type=state_type, name=name, message=message, data=data, state_details=StateDetails(**details)
        )
    )


def awaiting_retry(*, scheduled_time: dt.datetime, **kwargs: Any) -> StateCreate:
    return new_state(StateType.SCHEDULED, name="AwaitingRetry", scheduled_time=scheduled_time, **kwargs)


def state_details_of(state: FlowRunState | StateCreate | None) -> StateDetails:
    """Typed details of a stored state row or a proposal."""
    if state is None:
        return StateDetails()
    if isinstance(state, StateCreate):
        return state.state_details
    return StateDetails.model_validate(state.state_details or {})


def is_final(state_type: StateType | str | None) -> bool:
    return state_type is not None and StateType(state_type) in TERMINAL_STATE_TYPES


def has_persisted_result(data: Any) -> bool:
    """Does ``data`` look like persisted result metadata (and not an "unpersisted" marker)?"""
    return isinstance(data, dict) and data.get("type") != "unpersisted"


# --- the context ------------------------------------------------------------------------------


@dataclass(eq=False)
class OrchestrationContext:
    """One proposed transition of one flow run, and the response being built for it.

    ``run`` is the locked :class:`FlowRun`; rules and transforms may change its fields (the service
    saves them). ``initial_state`` is its current state row, ``proposed_state`` the proposal (rules
    may mutate it, or replace it through ``reject_transition``); ``None`` means nothing will be
    written. After validation ``validated_state`` is the row to report.
    """

    run: FlowRun
    initial_state: FlowRunState | None
    proposed_state: StateCreate | None
    actor: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    validated_state: FlowRunState | None = None
    response_status: SetStateStatus = SetStateStatus.ACCEPT
    response_details: dict[str, Any] = field(default_factory=accept_details)
    orchestration_error: Exception | None = None
    written: bool = False
    rule_signature: list[str] = field(default_factory=list)
    finalization_signature: list[str] = field(default_factory=list)
    intended_transition: tuple[StateType | None, StateType | None] = field(init=False)

    def __post_init__(self) -> None:
        self.intended_transition = (self.initial_state_type, self.proposed_state_type)

    @property
    def initial_state_type(self) -> StateType | None:
        return StateType(self.initial_state.type) if self.initial_state is not None else None

    @property
    def proposed_state_type(self) -> StateType | None:
        return StateType(self.proposed_state.type) if self.proposed_state is not None else None

    @property
    def validated_state_type(self) -> StateType | None:
        return StateType(self.validated_state.type) if self.validated_state is not None else None

    @cached_property
    def initial_details(self) -> StateDetails:
        """The initial state's details, typed (datetimes parsed)."""
        return state_details_of(self.initial_state)

    @property
    def run_settings(self) -> FlowRunPolicy:
        """The run's ``empirical_policy``, typed; the deprecated ``max_retries`` and
        ``retry_delay_seconds`` stand in for ``retries`` and ``retry_delay`` as in Prefect."""
        values = dict(self.run.empirical_policy or {})
        if not values.get("retries") and values.get("max_retries", 0) not in (0, None):
            values["retries"] = values["max_retries"]
        if not values.get("retry_delay") and values.get("retry_delay_seconds", 0) not in (0, None):
            values["retry_delay"] = values["retry_delay_seconds"]
        return FlowRunPolicy.model_validate(values)

    def update_run_policy(self, **changes: Any) -> None:
        """Change keys of the run's ``empirical_policy`` (stored as JSON)."""
        self.run.empirical_policy = {**(self.run.empirical_policy or {}), **changes}

    def validate_proposed_state(self) -> None:
        """Write the governed proposal as the run's new state row; with no proposal left, the
        run's current state is what the response reports."""
        if self.proposed_state is None:
            self.validated_state = self.run.state
            return
        proposal = self.proposed_state
        row = FlowRunState(
            id=uuid.uuid4(),
            workspace_id=self.run.workspace_id,
            flow_run=self.run,
            type=StateType(proposal.type).value,
            name=proposal.name or default_state_name(proposal.type),
            timestamp=proposal.timestamp or timezone.now(),
            message=proposal.message,
            data=proposal.data,
            state_details=proposal.state_details.model_dump(mode="json"),
        )
        insert_or_defer(row, lambda: row.save(force_insert=True))
        self.run.state = row
        self.validated_state = row
        self.written = True


# --- rules ------------------------------------------------------------------------------------


class BaseOrchestrationRule(AbstractContextManager[OrchestrationContext]):
    """A stateful context manager that governs one kind of transition (see the module doc)."""

    FROM_STATES: ClassVar[Iterable[StateType | None]] = frozenset()
    TO_STATES: ClassVar[Iterable[StateType | None]] = frozenset()

    def __init__(
        self,
        context: OrchestrationContext,
        from_state_type: StateType | None,
        to_state_type: StateType | None,
    ) -> None:
        self.context = context
        self.from_state_type = from_state_type
        self.to_state_type = to_state_type
        self._invalid_on_entry: bool | None = None

    @property
    def rule_name(self) -> str:
        return type(self).__name__

    def __enter__(self) -> OrchestrationContext:
        if self.invalid():
            return self.context
        try:
            self.before_transition(self.context.initial_state, self.context.proposed_state, self.context)
            self.context.rule_signature.append(self.rule_name)
        except Exception as error:
            logger.exception("Error in before_transition of %s", self.rule_name)
            self.context.proposed_state = None
            self.context.response_status = SetStateStatus.ABORT
            self.context.response_details = abort_details(
                f"Aborting orchestration due to error in {self.rule_name}: !{error!r}"
            )
            self.context.orchestration_error = error
        return self.context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None or self.invalid():
            return
        if self.fizzled():
            self.cleanup(self.context.initial_state, self.context.validated_state, self.context)
        else:
            self.after_transition(self.context.initial_state, self.context.validated_state, self.context)
            self.context.finalization_signature.append(self.rule_name)

    # hooks ------------------------------------------------------------------------------------

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        """Before the proposal is validated: mutate it, or reject/delay/abort the transition."""

    def after_transition(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        """After validation, when the transition is still the one this rule governed."""

    def cleanup(
        self,
        initial_state: FlowRunState | None,
        validated_state: FlowRunState | None,
        context: OrchestrationContext,
    ) -> None:
        """After validation, when another rule changed the transition: undo side effects."""

    # validity ---------------------------------------------------------------------------------

    def invalid(self) -> bool:
        """Not this rule's transition: no hook fires, on entry or exit."""
        if self._invalid_on_entry is None:
            self._invalid_on_entry = (
                self.from_state_type not in self.FROM_STATES
                or self.to_state_type not in self.TO_STATES
                or self.invalid_transition()
            )
        return self._invalid_on_entry

    def fizzled(self) -> bool:
        """Valid on entry, but another rule changed the transition before exit."""
        if self._invalid_on_entry:
            return False
        return self.invalid_transition()

    def invalid_transition(self) -> bool:
        return (
            self.from_state_type != self.context.initial_state_type
            or self.to_state_type != self.context.proposed_state_type
        )

    # what a rule can do to the transition -------------------------------------------------------

    def _ensure_not_validated(self) -> None:
        if self.context.validated_state is not None:
            raise OrchestrationError("The transition is already validated")

    def reject_transition(self, state: StateCreate | None, reason: str) -> None:
        """Replace the proposal with ``state``, or with nothing (the run keeps its current state,
        which the response reports)."""
        self._ensure_not_validated()
        if state is None:
            if self.from_state_type is None:
                raise OrchestrationError(
                    "The current run has no state; this transition cannot be rejected without "
                    "providing a new state."
                )
            self.to_state_type = None
            self.context.proposed_state = None
        else:
            # A rule that changes the proposal must not fizzle itself.
            self.to_state_type = StateType(state.type)
            self.context.proposed_state = state
        self.context.response_status = SetStateStatus.REJECT
        self.context.response_details = reject_details(reason)

    def delay_transition(self, delay_seconds: int, reason: str) -> None:
        """Write nothing and tell the client to propose again in ``delay_seconds`` (WAIT)."""
        self._ensure_not_validated()
        self.to_state_type = None
        self.context.proposed_state = None
        self.context.response_status = SetStateStatus.WAIT
        self.context.response_details = wait_details(delay_seconds, reason)

    def abort_transition(self, reason: str) -> None:
        """Write nothing; the client is expected to stop orchestrating this run."""
        self._ensure_not_validated()
        self.to_state_type = None
        self.context.proposed_state = None
        self.context.response_status = SetStateStatus.ABORT
        self.context.response_details = abort_details(reason)

    def rename_state(self, state_name: str) -> None:
        if self.context.proposed_state is not None:
            self.context.proposed_state.name = state_name

    def update_context_parameters(self, key: str, value: Any) -> None:
        self.context.parameters[key] = value


class BaseUniversalTransform(AbstractContextManager[OrchestrationContext]):
    """Bookkeeping that fires on every transition (Prefect's "universal transforms"). Transforms
    are not stateful and do not fizzle; each checks :meth:`nullified_transition` itself."""

    FROM_STATES: ClassVar[Iterable[StateType | None]] = ALL_ORCHESTRATION_STATES
    TO_STATES: ClassVar[Iterable[StateType | None]] = ALL_ORCHESTRATION_STATES

    def __init__(
        self,
        context: OrchestrationContext,
        from_state_type: StateType | None,
        to_state_type: StateType | None,
    ) -> None:
        self.context = context
        self.from_state_type = from_state_type
        self.to_state_type = to_state_type

    def __enter__(self) -> OrchestrationContext:
        self.before_transition(self.context)
        self.context.rule_signature.append(type(self).__name__)
        return self.context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None and not self.exception_in_transition():
            self.after_transition(self.context)
            self.context.finalization_signature.append(type(self).__name__)

    def before_transition(self, context: OrchestrationContext) -> None:
        """Before validation."""

    def after_transition(self, context: OrchestrationContext) -> None:
        """After validation."""

    def nullified_transition(self) -> bool:
        """Nothing will be written (the proposal was rejected without a state, delayed, aborted)."""
        return self.context.proposed_state is None

    def exception_in_transition(self) -> bool:
        return self.context.orchestration_error is not None


RuleType = type[BaseOrchestrationRule] | type[BaseUniversalTransform]


class BaseOrchestrationPolicy:
    """An ordered list of rules and transforms; order is behaviour."""

    @classmethod
    def priority(cls) -> list[RuleType]:
        return []

    @classmethod
    def compile_transition_rules(
        cls, from_state: StateType | None = None, to_state: StateType | None = None
    ) -> list[RuleType]:
        """The rules of this policy that govern ``from_state → to_state``, in priority order."""
        return [
            rule for rule in cls.priority() if from_state in rule.FROM_STATES and to_state in rule.TO_STATES
        ]


def apply_rules(context: OrchestrationContext, rules: Sequence[RuleType]) -> OrchestrationContext:
    """Enter ``rules`` in order, validate the governed proposal, and exit them in reverse order.
    The caller owns the transaction and saves ``context.run``."""
    with contextlib.ExitStack() as stack:
        for rule in rules:
            stack.enter_context(rule(context, *context.intended_transition))
        context.validate_proposed_state()
    return context
