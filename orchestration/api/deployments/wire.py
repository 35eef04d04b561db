"""Deployments and their schedules in Prefect's response shapes (``DeploymentResponse``,
``DeploymentSchedule``), as captured from Prefect 3.9's server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from orchestration.api.concurrency.wire import limit_to_wire
from orchestration.models import ConcurrencyLimitV2
from orchestration.schemas.base import iso
from orchestration.services.concurrency import deployment_limit_name
from orchestration.services.deployments import deployment_status, schedules_of


def _id(value) -> str | None:
    return str(value) if value is not None else None


def schedule_to_wire(row) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "created": iso(row.created),
        "updated": iso(row.updated),
        "deployment_id": str(row.deployment_id),
        "schedule": row.schedule,
        "active": row.active,
        "max_scheduled_runs": row.max_scheduled_runs,
        "parameters": row.parameters or {},
        "slug": row.slug,
    }


def deployment_to_wire(
    deployment,
    *,
    schedules: list,
    global_concurrency_limit: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """``schedules`` are the deployment's schedule rows; ``global_concurrency_limit`` the wire form
    of the limit behind ``concurrency_limit`` (Prefect reports the limit there and always answers
    ``concurrency_limit: null``)."""
    now = now or timezone.now()
    queue = deployment.work_queue
    return {
        "id": str(deployment.id),
        "created": iso(deployment.created),
        "updated": iso(deployment.updated),
        "name": deployment.name,
        "version": deployment.version,
        "description": deployment.description,
        "flow_id": str(deployment.flow_id),
        "paused": deployment.paused,
        "schedules": [schedule_to_wire(row) for row in schedules],
        "concurrency_limit": None,
        "global_concurrency_limit": global_concurrency_limit,
        "concurrency_options": deployment.concurrency_options,
        "job_variables": deployment.job_variables or {},
        "parameters": deployment.parameters or {},
        "tags": deployment.tags or [],
        "labels": deployment.labels or {},
        "work_queue_name": deployment.work_queue_name,
        "work_queue_id": _id(deployment.work_queue_id),
        "last_polled": iso(deployment.last_polled),
        "parameter_openapi_schema": deployment.parameter_openapi_schema,
        "path": deployment.path,
        "pull_steps": deployment.pull_steps,
        "entrypoint": deployment.entrypoint,
        "storage_document_id": _id(deployment.storage_document_id),
        "infrastructure_document_id": _id(deployment.infrastructure_document_id),
        "created_by": deployment.created_by,
        "updated_by": deployment.updated_by,
        "work_pool_name": queue.work_pool.name if queue is not None else None,
        "status": deployment_status(deployment, now=now),
        "enforce_parameter_schema": deployment.enforce_parameter_schema,
    }


def deployments_to_wire(deployments: list, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Many deployments with two more queries in all (their schedules, their limits)."""
    now = now or timezone.now()
    if not deployments:
        return []
    schedules = schedules_of(d.id for d in deployments)
    names = {deployment_limit_name(d.id): d.id for d in deployments if d.concurrency_limit is not None}
    limits = {}
    if names:
        for limit in ConcurrencyLimitV2.objects.filter(name__in=list(names)):
            limits[names[limit.name]] = limit_to_wire(limit, now)
    return [
        deployment_to_wire(
            d, schedules=schedules.get(d.id, []), global_concurrency_limit=limits.get(d.id), now=now
        )
        for d in deployments
    ]
