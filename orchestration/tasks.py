"""Celery tasks: thin wrappers around the orchestration services. Each sweep crosses tenants on
purpose and says so in its service (``.unscoped()``), then acts inside each workspace's scope."""

from __future__ import annotations

import logging
import time
import uuid

from celery import shared_task

from core import metrics
from orchestration.services.automation_actions import ActionsToRetry, automation_firing_act
from orchestration.services.concurrency import leases_expire
from orchestration.services.lifecycle import (
    cancellation_cleanup,
    cancelling_runs_finish,
    expired_pauses_fail,
    late_runs_mark,
    zombie_runs_mark_crashed,
)
from orchestration.services.retention import run_data_purge_expired
from orchestration.services.scheduler import scheduler_tick
from orchestration.services.triggers import (
    automation_buckets_sweep,
    automation_firings_redispatch_stalled,
    proactive_triggers_evaluate,
    stored_events_evaluate,
)

logger = logging.getLogger(__name__)


@shared_task(name="orchestration.schedule_deployments")
def schedule_deployments() -> int:
    started = time.perf_counter()
    try:
        return scheduler_tick()
    finally:
        metrics.record_scheduler_tick(time.perf_counter() - started)


@shared_task(name="orchestration.mark_late_runs")
def mark_late_runs() -> int:
    return late_runs_mark()


@shared_task(name="orchestration.mark_crashed_runs")
def mark_crashed_runs() -> int:
    return zombie_runs_mark_crashed()


@shared_task(name="orchestration.finish_abandoned_cancellations")
def finish_abandoned_cancellations() -> int:
    return cancelling_runs_finish()


@shared_task(name="orchestration.cancellation_cleanup")
def cancel_children_of_cancelled_runs() -> int:
    return cancellation_cleanup()


@shared_task(name="orchestration.fail_expired_pauses")
def fail_expired_pauses() -> int:
    return expired_pauses_fail()


@shared_task(name="orchestration.expire_concurrency_leases")
def expire_concurrency_leases() -> int:
    return leases_expire()


AUTOMATION_ACTION_ATTEMPTS = 4


@shared_task(
    name="orchestration.run_automation_actions",
    bind=True,
    max_retries=AUTOMATION_ACTION_ATTEMPTS - 1,
    # Its pool process killed under it (the out-of-memory killer's way, the worker itself lives):
    # sent again a second later, as a retry, instead of being acknowledged as failed. Each action
    # runs once however often the task is delivered, and the retries are counted, so an action
    # that kills its process every time stops after the last attempt instead of looping.
    retry_on_worker_lost=True,
    default_retry_delay=1,
)
def run_automation_actions(self, workspace_id: str, firing_id: str) -> int:
    """The actions of one committed firing (each runs once, however often this is delivered). An
    action that raised unexpectedly left no trace and is tried again, with backoff; on the last
    attempt its failure is recorded and announced."""
    try:
        return automation_firing_act(
            workspace_id=uuid.UUID(str(workspace_id)),
            firing_id=uuid.UUID(str(firing_id)),
            final_attempt=self.request.retries >= AUTOMATION_ACTION_ATTEMPTS - 1,
        )
    except ActionsToRetry as error:
        raise self.retry(exc=error, countdown=2**self.request.retries) from error


@shared_task(name="orchestration.sweep_automation_buckets")
def sweep_automation_buckets() -> int:
    return automation_buckets_sweep()


@shared_task(name="orchestration.redispatch_stalled_firings")
def redispatch_stalled_firings() -> int:
    """Firings whose actions have not all run a while after firing (their task never published or
    lost) are handed off again; each action still runs once."""
    return automation_firings_redispatch_stalled()


@shared_task(name="orchestration.evaluate_proactive_triggers")
def evaluate_proactive_triggers() -> int:
    """Proactive triggers' windows that ended, in every workspace (their state is in the
    database: a second clock or a restarted one fires nothing twice and loses nothing)."""
    return proactive_triggers_evaluate()


STORED_EVENTS_EVALUATION_ATTEMPTS = 6


@shared_task(
    name="orchestration.evaluate_stored_events",
    bind=True,
    max_retries=STORED_EVENTS_EVALUATION_ATTEMPTS - 1,
    # Idempotent (the evaluation is recorded in its transaction): sent again if its pool process
    # is killed under it.
    retry_on_worker_lost=True,
)
def evaluate_stored_events(
    self, workspace_id: str, event_ids: list[str], depth: int = 0, evaluation_id: str | None = None
) -> int:
    """Stored events whose trigger evaluation failed after they were stored, evaluated again (once,
    however often this is delivered); retried with backoff (2, 4, … 32 s), logged on the last
    failure."""
    try:
        return stored_events_evaluate(
            workspace_id=uuid.UUID(str(workspace_id)),
            event_ids=[uuid.UUID(str(event_id)) for event_id in event_ids],
            depth=depth,
            evaluation_id=uuid.UUID(str(evaluation_id or self.request.id)),
        )
    except Exception as error:
        if self.request.retries >= STORED_EVENTS_EVALUATION_ATTEMPTS - 1:
            logger.exception(
                "Workspace %s: %d stored event(s) not evaluated by the automations after %d attempts",
                workspace_id,
                len(event_ids),
                STORED_EVENTS_EVALUATION_ATTEMPTS,
            )
            return 0
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error


def stored_events_evaluate_later(
    workspace_id: uuid.UUID, event_ids: list[uuid.UUID], depth: int, evaluation_id: uuid.UUID
) -> None:
    """A batch whose trigger evaluation failed, handed to ``evaluate_stored_events``."""
    evaluate_stored_events.apply_async(
        (str(workspace_id), [str(event_id) for event_id in event_ids], depth, str(evaluation_id))
    )


def automation_firings_dispatch(workspace_id: uuid.UUID, firing_ids: list[uuid.UUID]) -> None:
    """A committed batch's firings, one task each (each retried and run on its own), sent over one
    broker connection."""
    with run_automation_actions.app.producer_or_acquire() as producer:
        for firing_id in firing_ids:
            run_automation_actions.apply_async((str(workspace_id), str(firing_id)), producer=producer)


@shared_task(name="orchestration.purge_expired_run_data")
def purge_expired_run_data() -> dict:
    return run_data_purge_expired()
