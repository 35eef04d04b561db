"""Helpers of the trigger-engine tests: automations made through the API, events stored through
the events store with their after-commit work run, and what fired."""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone

from orchestration.events.services import events_ingest
from orchestration.models import AutomationActionRun, AutomationFiring, Event
from orchestration.services import triggers

T0 = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


def automation(client, tenant, *, actions=None, name="auto", **trigger) -> str:
    body = {
        "name": name,
        "trigger": {"type": "event", "posture": "Reactive", "threshold": 1, **trigger},
        "actions": actions or [{"type": "do-nothing"}],
    }
    response = client.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def event(name, *, seconds=0.0, resource="prefect.flow-run.1", related=None, **labels) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "occurred": (T0 + dt.timedelta(seconds=seconds)).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource, **labels},
        "related": related or [],
        "payload": {},
    }


def emit(capture, tenant, *events) -> None:
    """Store the events as a client's batch would be, and run what follows their commit (the
    trigger engine, the action task: Celery is eager in tests)."""
    with capture(execute=True):
        events_ingest(workspace_id=tenant.workspace.id, events=list(events))


def firings(tenant, automation_id=None):
    rows = AutomationFiring.objects.for_workspace(tenant.workspace.id).order_by("triggered")
    return list(rows.filter(automation_id=automation_id) if automation_id else rows)


def emitted(tenant, name):
    return list(Event.objects.for_workspace(tenant.workspace.id).filter(event=name).order_by("occurred"))


def action_runs(tenant):
    return list(AutomationActionRun.objects.for_workspace(tenant.workspace.id).order_by("id"))


def clock(capture, *, seconds: float) -> int:
    """The proactive clock's pass at ``T0 + seconds``, running what follows its commits."""
    with capture(execute=True):
        return triggers.proactive_triggers_evaluate(now=T0 + dt.timedelta(seconds=seconds))
