"""Retention by plan: flow runs, task runs, logs, events and artifacts older than the account's
plan keeps them (``billing.plans.Plan.run_retention_days``, Prefect Cloud's figures) are deleted.

As Prefect Cloud counts it, a flow or task run is kept for that many days from when it reached a
terminal state (its ``end_time``; a subflow run on its own clock, never with its parent), a log from
its timestamp, an event from when it occurred and an artifact from its creation. A run that has not
finished is never deleted.

The sweep crosses tenants on purpose (every workspace), and deletes **by id in batches** of
``RETENTION_BATCH_SIZE``, each batch its own short transaction, so no lock is held for long and the
sweep can stop anywhere and resume on its next run (Celery beat, once a day). A run's states and
inputs go with it (their foreign keys cascade). The audit log keeps its own retention and chain
(``audit.services.audit_purge_expired``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.plans import PLANS, with_contract_limits
from orchestration.models import Artifact, Event, FlowRun, Log, TaskRun
from orchestration.models.states import TERMINAL_STATE_TYPES
from tenants.selectors import workspace_plans

logger = logging.getLogger(__name__)

RETENTION_BATCH_SIZE = 1_000


def _targets(cutoff: dt.datetime):
    finished = Q(state_type__in=sorted(TERMINAL_STATE_TYPES), end_time__lt=cutoff)
    return (
        ("flow_runs", FlowRun, finished),
        ("task_runs", TaskRun, finished),
        ("logs", Log, Q(timestamp__lt=cutoff)),
        ("events", Event, Q(occurred__lt=cutoff)),
        ("artifacts", Artifact, Q(created__lt=cutoff)),
    )


def run_data_purge_expired(*, now: dt.datetime | None = None, batch_size: int = RETENTION_BATCH_SIZE) -> dict:
    """Delete what every workspace's plan no longer keeps; how many of each kind were deleted."""
    now = now or timezone.now()
    deleted: Counter[str] = Counter()
    for workspace_id, plan_key, plan_limits in workspace_plans():
        if plan_key not in PLANS:
            continue  # an unknown plan keeps everything rather than guessing
        plan = with_contract_limits(PLANS[plan_key], plan_limits)
        cutoff = now - dt.timedelta(days=plan.run_retention_days)
        for name, model, condition in _targets(cutoff):
            deleted[name] += _delete_in_batches(model, workspace_id, condition, batch_size)
    if any(deleted.values()):
        logger.info("retention purge deleted %s", dict(deleted))
    return dict(deleted)


def _delete_in_batches(model, workspace_id, condition: Q, batch_size: int) -> int:
    total = 0
    while True:
        # One workspace's expired rows, by id: a deliberate read outside any request's scope.
        ids = list(
            model.objects.for_workspace(workspace_id)
            .filter(condition)
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return total
        with transaction.atomic():
            model.objects.for_workspace(workspace_id).filter(pk__in=ids).delete()
        total += len(ids)
        if len(ids) < batch_size:
            return total
