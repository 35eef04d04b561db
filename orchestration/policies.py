"""Orchestration policies: ordered lists of rules. Order is behaviour (Prefect's
``core_policy.py`` / ``global_policy.py``): an earlier rule that rejects, delays or aborts a
transition makes the later ones for that transition invalid, and rules exit in reverse order.

* :class:`CoreFlowPolicy` governs ``set_state`` proposals.
* :class:`MinimalFlowPolicy` governs ``force=True`` proposals: it still protects persisted results,
  short-cuts cancelling runs that have no infrastructure, and emits the state event.
* :class:`GlobalFlowPolicy` holds the bookkeeping transforms entered after either policy.

Deployment concurrency (``orchestration/rules/concurrency.py``) sits where Prefect puts it: the
slot is validated or secured right after ``PreventPendingTransitions`` and released by the last
transform of the core and minimal policies. ``UpdateSubflowParentTask`` mirrors a subflow's
states on its parent task run.

Task runs (``set_task_run_state``): :class:`CoreTaskPolicy` for proposals, :class:`BackgroundTaskPolicy`
for deferred (background) task runs, :class:`MinimalTaskPolicy` for ``force=True``, and
:class:`GlobalTaskPolicy` after either. Tag concurrency (``orchestration/rules/task_concurrency.py``)
sits where Prefect puts it: slots are secured after ``PreventRunningTasksFromStoppedFlows`` (cached
states are retrieved first) and given back by the last transform of every task policy.
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
from orchestration.rules.task_concurrency import ReleaseTaskConcurrencySlots, SecureTaskConcurrencySlots
from orchestration.rules.task_runs import (
    CacheInsertion,
    CacheRetrieval,
    CopyTaskParametersID,
    EnqueueScheduledTasks,
    HandleTaskTerminalStateTransitions,
    IncrementTaskRunCount,
    PreventRunningTasksFromStoppedFlows,
    RenameReruns,
    RetryFailedTasks,
    UpdateFlowRunTrackerOnTasks,
    UpdateSubflowParentTask,
    UpdateTaskStateDetails,
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
            UpdateSubflowParentTask,
            UpdateSubflowStateDetails,
            IncrementFlowRunCount,
            RemoveResumingIndicator,
        ]


class CoreTaskPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            CacheRetrieval,
            HandleTaskTerminalStateTransitions,
            PreventRunningTasksFromStoppedFlows,
            SecureTaskConcurrencySlots,  # cached states are retrieved even when slots are full
            CopyScheduledTime,
            WaitForScheduledTime,
            RetryFailedTasks,
            RenameReruns,
            UpdateFlowRunTrackerOnTasks,
            CacheInsertion,
            ReleaseTaskConcurrencySlots,
        ]


class BackgroundTaskPolicy(BaseOrchestrationPolicy):
    """Deferred task runs: the core rules, no RUNNING without a worker's claim (PENDING), and
    SCHEDULED runs join their task key's queue."""

    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            PreventPendingTransitions,
            CacheRetrieval,
            HandleTaskTerminalStateTransitions,
            CopyScheduledTime,
            CopyTaskParametersID,
            WaitForScheduledTime,
            RetryFailedTasks,
            RenameReruns,
            UpdateFlowRunTrackerOnTasks,
            CacheInsertion,
            ReleaseTaskConcurrencySlots,  # slots are not taken here (as in Prefect), but given back
            EnqueueScheduledTasks,
        ]


class MinimalTaskPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [ReleaseTaskConcurrencySlots]  # a forced state still gives back tag slots


class GlobalTaskPolicy(BaseOrchestrationPolicy):
    @classmethod
    def priority(cls) -> list[RuleType]:
        return [
            SetRunStateType,
            SetRunStateName,
            SetRunStateTimestamp,
            SetStartTime,
            SetEndTime,
            IncrementRunTime,
            SetExpectedStartTime,
            SetNextScheduledStartTime,
            UpdateTaskStateDetails,
            IncrementTaskRunCount,
        ]
