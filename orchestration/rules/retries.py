"""Flow-run retries: a failure with retries left becomes AwaitingRetry."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from orchestration.models import FlowRunState
from orchestration.models.states import StateType
from orchestration.rules.base import BaseOrchestrationRule, OrchestrationContext, awaiting_retry
from orchestration.schemas.states import StateCreate


class RetryFailedFlows(BaseOrchestrationRule):
    """RUNNING → FAILED while ``run_count <= retries`` is rejected into an ``AwaitingRetry``
    (SCHEDULED) state ``retry_delay`` seconds from now, keeping the failure's message and data.
    The client then retries in process: its next RUNNING proposal waits for the scheduled time.
    With no retries left the failure is accepted and ``retry_type`` is cleared, so the run can be
    retried later from outside (e.g. the UI)."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED})

    def before_transition(
        self,
        initial_state: FlowRunState | None,
        proposed_state: StateCreate | None,
        context: OrchestrationContext,
    ) -> None:
        if initial_state is None or proposed_state is None:
            return
        settings = context.run_settings
        if settings.retries is None or context.run.run_count > settings.retries:
            context.update_run_policy(retry_type=None)
            return

        scheduled_time = timezone.now() + dt.timedelta(seconds=settings.retry_delay or 0)
        context.update_run_policy(resuming=False, pause_keys=[], retry_type="in_process")
        retry_state = awaiting_retry(
            scheduled_time=scheduled_time,
            message=proposed_state.message,
            data=proposed_state.data,
            deployment_concurrency_lease_id=context.initial_details.deployment_concurrency_lease_id,
        )
        self.reject_transition(state=retry_state, reason="Retrying")
