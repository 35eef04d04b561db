"""The trigger engine keeps going when something fails: one workspace's proactive triggers cannot
stop the others', and no window's arithmetic overflows (a stored automation with a huge ``within``,
an event dated year 1 or 9999). What the API refuses up front (a ``within`` past ``MAX_WITHIN``) is
in ``test_api_automations.py``."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from orchestration.models import Automation, AutomationBucket
from orchestration.services import triggers
from tests.conftest import bearer
from tests.orchestration.automations.engine import automation, clock, emit, event, firings

pytestmark = pytest.mark.django_db

FAILED = "prefect.flow-run.Failed"


def _bucket(tenant, auto):
    return AutomationBucket.objects.for_workspace(tenant.workspace.id).get(automation_id=auto)


# --- proactive triggers: one workspace cannot stop the others --------------------------------------


def _stored_automation(tenant, *, within: float) -> Automation:
    """An automation written straight to the table, as one stored before ``within`` was bounded."""
    trigger = {"type": "event", "id": str(uuid.uuid4()), "match": {}, "match_related": {}, "after": [],
               "expect": [FAILED], "for_each": [], "posture": "Proactive", "threshold": 1, "within": within}  # fmt: skip
    return Automation.objects.unscoped().create(
        workspace_id=tenant.workspace.id, name="old", trigger=trigger, actions=[{"type": "do-nothing"}]
    )


def test_a_stored_huge_within_does_not_stop_other_workspaces(
    two_workspaces, django_capture_on_commit_callbacks
):
    odd, other = two_workspaces
    huge = _stored_automation(odd, within=2e13)
    auto = automation(
        bearer(APIClient(), other.service_key), other, posture="Proactive", expect=[FAILED], within=10
    )
    capture = django_capture_on_commit_callbacks
    clock(capture, seconds=0)  # both windows open
    assert clock(capture, seconds=11) == 1
    assert len(firings(other, auto)) == 1
    # The huge window is held at the last moment a datetime holds, and never ends.
    assert _bucket(odd, huge.id).end.year == 9999
    assert firings(odd, huge.id) == []


def test_one_workspace_failing_does_not_stop_the_others_clocks(
    two_workspaces, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    broken, other = two_workspaces
    automation(
        bearer(APIClient(), broken.service_key), broken, posture="Proactive", expect=[FAILED], within=10
    )
    auto = automation(
        bearer(APIClient(), other.service_key), other, posture="Proactive", expect=[FAILED], within=10
    )
    real = triggers._proactive_workspace

    def failing(workspace_id, proactive, now):
        if workspace_id == broken.workspace.id:
            raise OperationalError("canceling statement due to statement timeout")
        return real(workspace_id, proactive, now)

    monkeypatch.setattr(triggers, "_proactive_workspace", failing)
    capture = django_capture_on_commit_callbacks
    with caplog.at_level(logging.ERROR):
        clock(capture, seconds=0)
        assert clock(capture, seconds=11) == 1
    assert len(firings(other, auto)) == 1
    assert f"Workspace {broken.workspace.id}: proactive evaluation failed" in caplog.text


def test_events_at_the_ends_of_time_are_evaluated(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=366 * 86400)
    proactive = automation(dev, tenant, name="p", posture="Proactive", after=["prefect.flow-run.Running"],
                           expect=[FAILED], within=366 * 86400, for_each=["prefect.resource.id"])  # fmt: skip
    last = {**event(FAILED), "occurred": "9999-12-31T23:59:59+00:00"}
    first = {**event(FAILED), "occurred": "0001-01-01T00:00:01+00:00"}
    emit(capture, tenant, {**event("prefect.flow-run.Running"), "occurred": "9999-12-31T00:00:00+00:00"})
    emit(capture, tenant, last)
    emit(capture, tenant, first)
    emit(capture, tenant, event(FAILED))
    # Each far event opened a window of its own (held at the ends of time) and counted there.
    assert firings(tenant, auto) == []
    assert firings(tenant, proactive) == []
    assert clock(capture, seconds=60) == 0


def test_held_expect_events_of_a_stored_huge_within_do_not_overflow(
    tenant, django_capture_on_commit_callbacks
):
    """A proactive `after` trigger stored with a `within` past a datetime's range holds its events
    (the slot and retention arithmetic are held at the ends of time)."""
    row = _stored_automation(tenant, within=8e13)
    row.trigger = {**row.trigger, "after": ["prefect.flow-run.Running"], "for_each": ["prefect.resource.id"]}
    row.save()
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, {**event(FAILED), "occurred": "1960-01-01T00:00:00+00:00"})
    emit(capture, tenant, event(FAILED, seconds=1), event("prefect.flow-run.Running", seconds=2))
    assert clock(capture, seconds=3600) == 0
    assert firings(tenant, row.id) == []
