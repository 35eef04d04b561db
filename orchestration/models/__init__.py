"""Orchestration models, one module per concept. Every model here is workspace-scoped."""

from orchestration.models.artifacts import Artifact
from orchestration.models.automations import (
    Automation,
    AutomationActionRun,
    AutomationBucket,
    AutomationChildFiring,
    AutomationDeferredEvaluation,
    AutomationFiring,
    AutomationHeldEvent,
    AutomationRelatedResource,
)
from orchestration.models.blocks import BlockDocument, BlockDocumentReference, BlockSchema, BlockType
from orchestration.models.concurrency import ConcurrencyLease, ConcurrencyLimitV2, TaskRunConcurrencyLimit
from orchestration.models.deployments import Deployment, DeploymentSchedule
from orchestration.models.events import Event, EventResource
from orchestration.models.flow_run_inputs import FlowRunInput
from orchestration.models.flow_runs import FlowRun, FlowRunState
from orchestration.models.flows import Flow
from orchestration.models.logs import Log
from orchestration.models.saved_searches import ResultStorageDefault, SavedSearch
from orchestration.models.task_runs import TaskRun, TaskRunState, TaskWorker
from orchestration.models.variables import Variable
from orchestration.models.webhooks import SignatureScheme, Webhook
from orchestration.models.work_pools import Worker, WorkPool, WorkQueue

__all__ = [
    "Artifact",
    "Automation",
    "AutomationActionRun",
    "AutomationBucket",
    "AutomationChildFiring",
    "AutomationDeferredEvaluation",
    "AutomationFiring",
    "AutomationHeldEvent",
    "AutomationRelatedResource",
    "BlockDocument",
    "BlockDocumentReference",
    "BlockSchema",
    "BlockType",
    "ConcurrencyLease",
    "ConcurrencyLimitV2",
    "Deployment",
    "DeploymentSchedule",
    "Event",
    "EventResource",
    "Flow",
    "FlowRun",
    "FlowRunInput",
    "FlowRunState",
    "Log",
    "ResultStorageDefault",
    "SavedSearch",
    "TaskRun",
    "TaskRunConcurrencyLimit",
    "TaskRunState",
    "TaskWorker",
    "SignatureScheme",
    "Variable",
    "Webhook",
    "WorkPool",
    "WorkQueue",
    "Worker",
]
