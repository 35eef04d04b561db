"""Proactive triggers evaluated on the clock from the shared buckets, and compound and sequence
triggers fed by their children's firings, with Prefect's semantics
(``prefect/server/events/triggers.py``: ``evaluate``, ``proactive_evaluation``,
``evaluate_composite_trigger``)."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestration.models import AutomationBucket, AutomationChildFiring, AutomationFiring
from orchestration.services import triggers
from tests.orchestration.automations.engine import (
    T0,
    action_runs,
    automation,
    clock,
    emit,
    emitted,
    event,
    firings,
)

pytestmark = pytest.mark.django_db

RUNNING, COMPLETED = "prefect.flow-run.Running", "prefect.flow-run.Completed"


def _proactive(client, tenant, **trigger) -> str:
    return automation(client, tenant, posture="Proactive", **trigger)


# --- proactive -------------------------------------------------------------------------------------


def test_a_flow_run_that_does_not_complete_within_the_window_fires(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = _proactive(dev, tenant, after=[RUNNING], expect=[COMPLETED], within=60,
                      for_each=["prefect.resource.id"])  # fmt: skip
    emit(capture, tenant, event(RUNNING, resource="prefect.flow-run.late"))
    emit(capture, tenant, event(RUNNING, resource="prefect.flow-run.ok"),
         event(COMPLETED, seconds=30, resource="prefect.flow-run.ok"))  # fmt: skip
    assert clock(capture, seconds=59) == 0  # the windows are still open
    assert firings(tenant, auto) == []

    assert clock(capture, seconds=61) == 1
    (firing,) = firings(tenant, auto)
    assert firing.triggering_labels == {"prefect.resource.id": "prefect.flow-run.late"}
    assert firing.triggering_event["event"] == RUNNING  # the window's last event
    (triggered,) = emitted(tenant, "prefect.automation.triggered")
    assert triggered.resource["prefect.posture"] == "Proactive"
    assert triggered.payload["triggering_labels"] == {"prefect.resource.id": "prefect.flow-run.late"}
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    # Both windows are spent (an `after` trigger waits for its next `after` event); the fired one
    # only awaits its expected event, to resolve.
    (left,) = AutomationBucket.objects.for_workspace(tenant.workspace.id)
    assert left.awaiting_resolution and left.bucketing_key == '["prefect.flow-run.late"]'
    assert clock(capture, seconds=200) == 0


def test_without_for_each_the_clock_opens_the_windows(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _proactive(dev, tenant, expect=["heartbeat"], threshold=2, within=10)
    assert clock(capture, seconds=0) == 0  # opens [0, 10)
    assert clock(capture, seconds=11) == 1  # nothing came: fires, and opens [11, 21)
    assert clock(capture, seconds=11) == 0  # the same moment again: that window fired once
    emit(capture, tenant, event("heartbeat", seconds=12), event("heartbeat", seconds=13))
    # Two heartbeats in [11, 21): satisfied, so the trigger that fired resolves.
    assert clock(capture, seconds=22) == 1
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1
    emit(capture, tenant, event("heartbeat", seconds=25))
    assert clock(capture, seconds=33) == 1  # one in [22, 32) is fewer than two
    assert len(emitted(tenant, "prefect.automation.triggered")) == 2
    assert len(firings(tenant, auto)) == 3
    assert all(f.triggering_event_id is None for f in firings(tenant, auto))


def test_a_pending_window_survives_a_restart_and_the_sweep(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _proactive(dev, tenant, after=[RUNNING], expect=[COMPLETED], within=60)
    emit(capture, tenant, event(RUNNING))
    # The process that saw the event is gone, and the clock stopped for a while: nothing about
    # the window lived in memory, and the sweep of ended windows leaves it for the clock.
    triggers.automations_memo_clear()
    assert triggers.automation_buckets_sweep(now=T0 + dt.timedelta(hours=2)) == 0
    assert clock(capture, seconds=3600) == 1
    assert len(firings(tenant, auto)) == 1


def test_a_disabled_proactive_automation_neither_fires_nor_keeps_its_windows(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = _proactive(dev, tenant, after=[RUNNING], expect=[COMPLETED], within=60)
    emit(capture, tenant, event(RUNNING))
    assert (
        dev.patch(f"{tenant.prefix}/automations/{auto}", {"enabled": False}, format="json").status_code == 204
    )
    assert clock(capture, seconds=120) == 0
    triggers.automation_buckets_sweep(now=T0 + dt.timedelta(hours=2))
    assert not AutomationBucket.objects.for_workspace(tenant.workspace.id).exists()
    assert firings(tenant, auto) == []


def test_the_clock_reads_only_workspaces_with_proactive_triggers(tenant, dev, django_assert_num_queries):
    automation(dev, tenant, expect=["x"])  # reactive only
    triggers.automations_memo_clear()
    with django_assert_num_queries(1):
        assert triggers.proactive_triggers_evaluate(now=T0) == 0


def test_heartbeats_in_after_and_expect_restart_the_window(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _proactive(dev, tenant, after=["beat"], expect=["beat"], within=30)
    for seconds in (0, 20, 40, 60):
        emit(capture, tenant, event("beat", seconds=seconds))
    assert clock(capture, seconds=85) == 0  # the last beat's window runs to 90
    assert clock(capture, seconds=91) == 1  # the beats stopped
    assert len(firings(tenant, auto)) == 1


# --- compound and sequence -------------------------------------------------------------------------


def _composite(client, tenant, kind: str, names: list[str], **extra) -> str:
    body = {
        "name": kind,
        "trigger": {
            "type": kind,
            "within": extra.pop("within", 600),
            "triggers": [
                {"type": "event", "posture": "Reactive", "expect": [n], "threshold": 1} for n in names
            ],
            **extra,
        },
        "actions": [{"type": "do-nothing"}],
    }
    response = client.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def _top(tenant, auto) -> list[AutomationFiring]:
    """The firings of the automation's own trigger: the ones that acted."""
    return [f for f in firings(tenant, auto) if f.actions]


def test_a_compound_trigger_needs_all_of_its_children(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _composite(dev, tenant, "compound", ["a", "b"], require="all")
    emit(capture, tenant, event("a"))
    emit(capture, tenant, event("a", seconds=1))  # the same child again replaces its firing
    assert _top(tenant, auto) == [] and emitted(tenant, "prefect.automation.triggered") == []
    emit(capture, tenant, event("b", seconds=2))
    (fired,) = _top(tenant, auto)
    assert fired.triggering_event["event"] == "b"
    (triggered,) = emitted(tenant, "prefect.automation.triggered")
    assert "prefect.posture" not in triggered.resource  # as Prefect's composite triggers
    assert [r.state for r in action_runs(tenant)] == ["executed"]
    # The children were consumed: the next firing needs both again.
    assert not AutomationChildFiring.objects.for_workspace(tenant.workspace.id).exists()
    emit(capture, tenant, event("b", seconds=3))
    assert len(_top(tenant, auto)) == 1


def test_compound_any_and_a_number(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    any_ = _composite(dev, tenant, "compound", ["a", "b", "c"], require="any")
    two = _composite(dev, tenant, "compound", ["a", "b", "c"], require=2)
    emit(capture, tenant, event("a"))
    emit(capture, tenant, event("c", seconds=1))
    assert len(_top(tenant, any_)) == 2
    assert len(_top(tenant, two)) == 1


def test_compound_children_older_than_its_window_do_not_count(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = _composite(dev, tenant, "compound", ["a", "b"], require="all", within=60)
    emit(capture, tenant, event("a"))
    AutomationChildFiring.objects.for_workspace(tenant.workspace.id).update(
        child_fired=T0 - dt.timedelta(minutes=5)
    )  # the child fired long ago
    emit(capture, tenant, event("b", seconds=1))
    assert _top(tenant, auto) == []


def test_a_sequence_trigger_needs_its_children_in_order(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _composite(dev, tenant, "sequence", ["a", "b"])
    emit(capture, tenant, event("b"))
    emit(capture, tenant, event("a", seconds=1))
    assert _top(tenant, auto) == []  # b then a
    emit(capture, tenant, event("b", seconds=2))  # b's latest firing now follows a's
    assert len(_top(tenant, auto)) == 1


def test_a_compound_of_a_proactive_child(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    body = {
        "name": "quiet and failed",
        "trigger": {
            "type": "compound", "require": "all", "within": 3600 * 3,
            "triggers": [
                {"type": "event", "posture": "Reactive", "expect": ["failed"], "threshold": 1},
                {"type": "event", "posture": "Proactive", "expect": ["beat"], "threshold": 1, "within": 30},
            ],
        },
        "actions": [{"type": "do-nothing"}],
    }  # fmt: skip
    response = dev.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 201, response.json()
    auto = response.json()["id"]
    emit(capture, tenant, event("failed"))
    assert clock(capture, seconds=0) == 0
    assert clock(capture, seconds=31) == 1
    assert len(_top(tenant, auto)) == 1
    # The child's next window hears a beat: a child does not resolve, and feeds its parent nothing.
    emit(capture, tenant, event("beat", seconds=35))
    assert clock(capture, seconds=62) == 0
    assert not AutomationChildFiring.objects.for_workspace(tenant.workspace.id).exists()
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1  # the compound's own firing


# --- resolved ----------------------------------------------------------------------------------------


def _with_state_actions(client, tenant, trigger: dict) -> str:
    body = {
        "name": "stateful",
        "trigger": {"type": "event", "threshold": 1, **trigger},
        "actions": [{"type": "do-nothing"}],
        "actions_on_trigger": [{"type": "do-nothing"}],
        "actions_on_resolve": [{"type": "do-nothing"}],
    }
    response = client.post(f"{tenant.prefix}/automations/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_a_reactive_firing_triggers_and_resolves_at_once(tenant, dev, django_capture_on_commit_callbacks):
    auto = _with_state_actions(dev, tenant, {"posture": "Reactive", "expect": ["x"]})
    emit(django_capture_on_commit_callbacks, tenant, event("x"))
    (firing,) = firings(tenant, auto)
    (triggered,) = emitted(tenant, "prefect.automation.triggered")
    (resolved,) = emitted(tenant, "prefect.automation.resolved")
    assert resolved.resource == triggered.resource and resolved.payload == triggered.payload
    # `actions` see the event, `actions_on_trigger` the triggered event, `actions_on_resolve` the
    # resolved one; each ran once.
    assert [entry["source"] for entry in firing.actions] == [
        "actions",
        "actions_on_trigger",
        "actions_on_resolve",
    ]
    assert [entry.get("event", {}).get("id") for entry in firing.actions[1:]] == [
        str(triggered.id), str(resolved.id)
    ]  # fmt: skip
    assert [r.state for r in action_runs(tenant)] == ["executed"] * 3


def test_a_proactive_trigger_resolves_when_its_events_resume(tenant, dev, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    auto = _with_state_actions(dev, tenant, {"posture": "Proactive", "expect": ["beat"], "within": 10})
    clock(capture, seconds=0)
    assert clock(capture, seconds=11) == 1  # [0, 10) was quiet: triggered
    assert clock(capture, seconds=22) == 1  # [11, 21) quiet too: fires again (as Prefect), no resolve
    assert emitted(tenant, "prefect.automation.resolved") == []
    emit(capture, tenant, event("beat", seconds=25))
    assert clock(capture, seconds=33) == 1  # [22, 32) heard a beat: resolved
    (resolved,) = emitted(tenant, "prefect.automation.resolved")
    assert resolved.resource["prefect.posture"] == "Proactive"
    assert len(emitted(tenant, "prefect.automation.triggered")) == 2
    resolving = firings(tenant, auto)[-1]
    assert [entry["source"] for entry in resolving.actions] == ["actions_on_resolve"]
    assert clock(capture, seconds=44) == 1  # quiet again: triggered again


def test_a_proactive_after_trigger_resolves_when_the_expected_event_arrives_late(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    auto = _with_state_actions(dev, tenant, {"posture": "Proactive", "after": [RUNNING], "expect": [COMPLETED],
                                             "within": 60, "for_each": ["prefect.resource.id"]})  # fmt: skip
    emit(capture, tenant, event(RUNNING, resource="prefect.flow-run.late"),
         event(RUNNING, resource="prefect.flow-run.other"))  # fmt: skip
    assert clock(capture, seconds=61) == 2  # neither completed within its window: triggered
    assert emitted(tenant, "prefect.automation.resolved") == []
    # Another flow run's completion resolves nothing of this one.
    emit(capture, tenant, event("prefect.flow-run.Failed", seconds=90, resource="prefect.flow-run.late"))
    assert emitted(tenant, "prefect.automation.resolved") == []
    emit(capture, tenant, event(COMPLETED, seconds=100, resource="prefect.flow-run.late"))
    (resolved,) = emitted(tenant, "prefect.automation.resolved")
    assert resolved.resource["prefect.posture"] == "Proactive"
    assert resolved.payload["triggering_labels"] == {"prefect.resource.id": "prefect.flow-run.late"}
    assert resolved.payload["triggering_event"]["event"] == COMPLETED
    resolving = firings(tenant, auto)[-1]
    assert [entry["source"] for entry in resolving.actions] == ["actions_on_resolve"]
    # It resolves once: a second completion (a re-sent event) resolves nothing more.
    emit(capture, tenant, event(COMPLETED, seconds=110, resource="prefect.flow-run.late"))
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1
    # The other one never completes: after the wait it is no longer awaited, and never resolves.
    assert clock(capture, seconds=61 + 3600 + 1) == 0
    assert not AutomationBucket.objects.for_workspace(tenant.workspace.id).exists()
    emit(capture, tenant, event(COMPLETED, seconds=3700, resource="prefect.flow-run.other"))
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1
    assert len(emitted(tenant, "prefect.automation.triggered")) == 2


def test_a_fired_after_trigger_that_starts_again_resolves_when_the_new_window_is_satisfied(
    tenant, dev, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _with_state_actions(dev, tenant, {"posture": "Proactive", "after": [RUNNING], "expect": [COMPLETED],
                                      "within": 60, "for_each": ["prefect.resource.id"]})  # fmt: skip
    emit(capture, tenant, event(RUNNING))
    assert clock(capture, seconds=61) == 1  # triggered
    # The run is retried: a new window, which its completion satisfies.
    emit(capture, tenant, event(RUNNING, seconds=100), event(COMPLETED, seconds=130))
    assert clock(capture, seconds=161) == 1  # the window ended satisfied: resolved
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1
    assert len(emitted(tenant, "prefect.automation.triggered")) == 1
    assert not AutomationBucket.objects.for_workspace(tenant.workspace.id).exists()
