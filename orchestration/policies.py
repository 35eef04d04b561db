"""Orchestration policies: ordered lists of rules. Order is behaviour (Prefect's
``core_policy.py`` / ``global_policy.py``): an earlier rule that rejects, delays or aborts a
transition makes the later ones for that transition invalid, and rules exit in reverse order.

* :class:`CoreFlowPolicy` governs ``set_state`` proposals.
* :class:`MinimalFlowPolicy` governs ``force=True`` proposals: it still protects persisted results,
  short-cuts cancelling runs that have no infrastructure, and emits the state event.
* :class:`GlobalFlowPolicy` holds the bookkeeping transforms entered after either policy.

Deployment concurrency (``orchestration/rules/concurrency.py``) sits where Prefect puts it: the
slot is validated or secured right after ``PreventPendingTransitions`` and released by the last
transform of the core and minimal policies. ``UpdateSubflowParentTask`` belongs here once
server-side task-run states exist.
"""

from __future__ import annotations

from orchestration.rules.base import BaseOrchestrationPolicy, RuleType
from orchestration.rules.cancellation import (
    BypassCancellingFlowRunsWithNoInfra,
    EnforceCancellingToCancelledTransition,
)
from orchestration.rules.concurrency import (
    ReleaseFlowConcurrencySlots,
    RemoveDeploymentConcurrencyLeaseForOldClientVersions,
    SecureFlowConcurrencySlots,
    ValidateDeploymentConcurrencyAtRunning,
)
from orchestration.rules.instrumentation import InstrumentFlowRunStateTransitions
from orchestration.rules.pausing import HandlePausingFlows, HandleResumingPausedFlows
from orchestration.rules.pending import PreventPendingTransitions
from orchestration.rules.retries import RetryFailedFlows
from orchestration.rules.run_input import ClearStaleRunInput
from orchestration.rules.scheduling import (
    CopyScheduledTime,
    EnsureOnlyScheduledFlowsMarkedLate,
    WaitForScheduledTime,
)
from orchestration.rules.terminal import (
    HandleFlowTerminalStateTransitions,
    PreventDuplicateTransitions,
    PreventResultDataLoss,
)
from orchestration.rules.transforms import (
    EnsureFlowRunStateTimestampIsUnique,
    IncrementFlowRunCount,
    IncrementRunTime,
    PreserveDeploymentConcurrencyLeaseId,
    RemoveResumingIndicator,
    SetEndTime,
    SetExpectedStartTime,
    SetNextScheduledStartTime,
    SetRunStateName,
    SetRunStateTimestamp,
    SetRunStateType,
    SetStartTime,
    UpdateStateDetails,
    UpdateSubflowStateDetails,
)


class CoreFlowPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            PreserveDeploymentConcurrencyLeaseId,
            PreventDuplicateTransitions,
            HandleFlowTerminalStateTransitions,
            EnforceCancellingToCancelledTransition,
            BypassCancellingFlowRunsWithNoInfra,
            PreventPendingTransitions,
            ValidateDeploymentConcurrencyAtRunning,
            SecureFlowConcurrencySlots,
            RemoveDeploymentConcurrencyLeaseForOldClientVersions,
            EnsureOnlyScheduledFlowsMarkedLate,
            HandlePausingFlows,
            ClearStaleRunInput,
            HandleResumingPausedFlows,
            CopyScheduledTime,
            WaitForScheduledTime,
            RetryFailedFlows,
            InstrumentFlowRunStateTransitions,
            ReleaseFlowConcurrencySlots,
        ]


class MinimalFlowPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            PreserveDeploymentConcurrencyLeaseId,
            PreventResultDataLoss,
            BypassCancellingFlowRunsWithNoInfra,  # cancelling a scheduled or suspended run from the UI
            InstrumentFlowRunStateTransitions,
            ReleaseFlowConcurrencySlots,
        ]


class GlobalFlowPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            EnsureFlowRunStateTimestampIsUnique,
            SetRunStateType,
            SetRunStateName,
            SetRunStateTimestamp,
            SetStartTime,
            SetEndTime,
            IncrementRunTime,
            SetExpectedStartTime,
            SetNextScheduledStartTime,
            UpdateStateDetails,
            UpdateSubflowStateDetails,
            IncrementFlowRunCount,
            RemoveResumingIndicator,
        ]
