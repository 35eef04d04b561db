"""Events that reach the triggers out of order or late, as Prefect's server takes them: held
``expect`` events of proactive triggers with ``after``
(``prefect/server/events/models/automation_held_events.py``), so events of one key evaluated in
any order are counted by the window they occurred in, once; and the events clock, which judges
ended windows as far behind real time as the events arrive."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from orchestration.models import AutomationBucket, AutomationHeldEvent, Event
from orchestration.services import triggers
from tests.orchestration.automations.engine import T0, automation, clock, emit, event, firings

pytestmark = pytest.mark.django_db

RUNNING, COMPLETED = "prefect.flow-run.Running", "prefect.flow-run.Completed"


def _held(tenant) -> list[AutomationHeldEvent]:
    return list(AutomationHeldEvent.objects.for_workspace(tenant.workspace.id).order_by("occurred"))


def test_an_expected_event_evaluated_before_the_after_event_counts_in_its_window(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, posture="Proactive", after=[RUNNING], expect=[COMPLETED], within=60,
                      for_each=["prefect.resource.id"])  # fmt: skip
    # Run a completed at 30 s, and that reached the trigger before its Running of 0 s.
    emit(capture, tenant, event(COMPLETED, seconds=30, resource="prefect.flow-run.a"))
    emit(capture, tenant, event(RUNNING, seconds=0, resource="prefect.flow-run.a"))
    # Run b's Completed occurred before its window opened: held, but not in the window.
    emit(capture, tenant, event(COMPLETED, seconds=-5, resource="prefect.flow-run.b"))
    emit(capture, tenant, event(RUNNING, seconds=0, resource="prefect.flow-run.b"))
    window = {b.bucketing_key: b.count for b in AutomationBucket.objects.for_workspace(tenant.workspace.id)}
    assert window == {'["prefect.flow-run.a"]': 1, '["prefect.flow-run.b"]': 0}

    assert clock(capture, seconds=61) == 1
    (firing,) = firings(tenant, auto)
    assert firing.triggering_labels == {"prefect.resource.id": "prefect.flow-run.b"}


def test_one_expected_event_evaluated_twice_counts_once(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, posture="Proactive", after=[RUNNING], expect=[COMPLETED], within=60,
                      threshold=2)  # fmt: skip
    emit(capture, tenant, event(RUNNING), event(COMPLETED, seconds=10))
    # The same stored event evaluated again (another process, a redelivered batch).
    stored = list(Event.objects.for_workspace(tenant.workspace.id).filter(event=COMPLETED))
    with capture(execute=True):
        assert triggers.events_stored(tenant.workspace.id, stored) == 0
    (bucket,) = AutomationBucket.objects.for_workspace(tenant.workspace.id)
    assert bucket.count == 1
    assert clock(capture, seconds=61) == 1  # one Completed of the two expected
    assert len(firings(tenant, auto)) == 1


def test_a_key_keeps_only_what_a_window_can_need(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    within = dt.timedelta(seconds=10)
    automation(dev, tenant, posture="Proactive", after=[RUNNING], expect=[COMPLETED], within=10)
    sent = [event(COMPLETED, seconds=100 + 0.5 * i) for i in range(12)]
    emit(capture, tenant, *sent)
    # Per 10 s slot (aligned to the epoch), the first and the last event.
    per_slot = Counter(triggers._slot_start(dt.datetime.fromisoformat(e["occurred"]), within) for e in sent)
    assert len(_held(tenant)) == sum(min(n, 2) for n in per_slot.values()) < len(sent)
    # A window opened over them later still counts one, which satisfies the trigger.
    emit(capture, tenant, event(RUNNING, seconds=99))
    (bucket,) = AutomationBucket.objects.for_workspace(tenant.workspace.id)
    assert bucket.count >= 1
    assert clock(capture, seconds=110) == 0

    # Held events older than the retention before the newest held one go.
    emit(capture, tenant, event(COMPLETED, seconds=100 + 3600))
    assert [h.occurred for h in _held(tenant)] == [T0 + dt.timedelta(seconds=3700)]


def test_the_sweep_drops_held_events_unless_a_window_of_their_key_is_open(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    automation(dev, tenant, posture="Proactive", after=[RUNNING], expect=[COMPLETED], within=3 * 3600,
               for_each=["prefect.resource.id"])  # fmt: skip
    emit(capture, tenant, event(RUNNING, resource="prefect.flow-run.open"),
         event(COMPLETED, seconds=5, resource="prefect.flow-run.open"),
         event(COMPLETED, seconds=5, resource="prefect.flow-run.alone"))  # fmt: skip
    assert len(_held(tenant)) == 2
    later = timezone.now() + triggers.HELD_EXPECT_EVENTS_RETENTION + dt.timedelta(seconds=1)
    triggers.automation_buckets_sweep(now=later - dt.timedelta(seconds=2))
    assert len(_held(tenant)) == 2  # held for less than the retention
    triggers.automation_buckets_sweep(now=later)
    # The open window's key keeps its event (an `after` event inside the window may roll it back).
    assert [h.bucketing_key for h in _held(tenant)] == ['["prefect.flow-run.open"]']


# --- the events clock -------------------------------------------------------------------------------


def _now_event(name: str, *, ago: float, resource: str = "prefect.flow-run.1") -> dict:
    body = event(name, resource=resource)
    body["occurred"] = (timezone.now() - dt.timedelta(seconds=ago)).isoformat()
    return body


def test_ended_windows_are_judged_on_the_eventsclock(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = automation(dev, tenant, posture="Proactive", after=[RUNNING], expect=[COMPLETED], within=10)
    # The newest event the workspace has stored occurred 12 s before it arrived: its window, which
    # ended 2 s ago in real time, has not ended on the events clock (its Completed may be on its way).
    emit(capture, tenant, _now_event(RUNNING, ago=12))
    offset = triggers.events_clock_offset(tenant.workspace.id)
    assert -13 < offset.total_seconds() <= -12
    with capture(execute=True):
        assert triggers.proactive_triggers_evaluate() == 0
    # An older event arriving later does not move the clock back.
    emit(capture, tenant, _now_event("other", ago=60))
    assert triggers.events_clock_offset(tenant.workspace.id) <= offset
    # The clock catches up with an event that arrives on time: the window has ended, and fires.
    emit(capture, tenant, _now_event("other", ago=0))
    assert -1 < triggers.events_clock_offset(tenant.workspace.id).total_seconds() <= 0
    with capture(execute=True):
        assert triggers.proactive_triggers_evaluate() == 1
    assert len(firings(tenant, auto)) == 1


def test_a_clock_ahead_of_real_time_counts_as_on_time(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    automation(dev, tenant, posture="Proactive", expect=[COMPLETED], within=10)
    emit(capture, tenant, _now_event("other", ago=-300))
    assert triggers.events_clock_offset(tenant.workspace.id) == dt.timedelta(0)
