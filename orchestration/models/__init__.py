"""Orchestration models, one module per concept. Every model here is workspace-scoped."""

from orchestration.models.artifacts import Artifact
from orchestration.models.events import Event
from orchestration.models.flow_runs import FlowRun, FlowRunState
from orchestration.models.flows import Flow
from orchestration.models.logs import Log
from orchestration.models.task_runs import TaskRun, TaskRunState
from orchestration.models.variables import Variable

__all__ = [
    "Artifact",
    "Event",
    "Flow",
    "FlowRun",
    "FlowRunState",
    "Log",
    "TaskRun",
    "TaskRunState",
    "Variable",
]
