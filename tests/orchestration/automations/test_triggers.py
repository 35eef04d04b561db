"""Reactive event triggers evaluated from the workspace's event stream, with Prefect's semantics
(``prefect/server/events/triggers.py``): match, match_related, after, expect, for_each, threshold
and within; a firing emits ``prefect.automation.triggered`` and runs the actions once."""

from __future__ import annotations

import uuid

import pytest

from orchestration.models import AutomationBucket, Event
from orchestration.services import triggers
from tests.orchestration.automations.engine import action_runs, automation, emit, emitted, event, firings

pytestmark = pytest.mark.django_db

FAILED = "prefect.flow-run.Failed"


def test_an_immediate_trigger_fires_for_every_matching_event(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED])
    emit(django_capture_on_commit_callbacks, tenant, event(FAILED), event("prefect.flow-run.Completed"))
    emit(django_capture_on_commit_callbacks, tenant, event(FAILED, seconds=1))
    assert len(firings(tenant, auto)) == 2
    triggered = emitted(tenant, "prefect.automation.triggered")
    assert len(triggered) == 2
    first = triggered[0]
    assert first.resource == {
        "prefect.resource.id": f"prefect.automation.{auto}",
        "prefect.resource.name": "auto",
        "prefect.posture": "Reactive",
    }
    source = Event.objects.for_workspace(tenant.workspace.id).filter(event=FAILED).order_by("occurred")[0]
    assert first.related == [
        {"prefect.resource.id": f"prefect.event.{source.id}", "prefect.resource.role": "triggering-event"}
    ]
    assert first.payload["triggering_event"]["id"] == str(source.id)
    # Each firing ran its one action once, and said so.
    assert [(r.action_index, r.state) for r in action_runs(tenant)] == [(0, "executed"), (0, "executed")]
    assert len(emitted(tenant, "prefect.automation.action.triggered")) == 2
    executed = emitted(tenant, "prefect.automation.action.executed")
    assert len(executed) == 2 and executed[0].payload["action_type"] == "do-nothing"


def test_threshold_within_a_window(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED], threshold=3, within=60)
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, event(FAILED, seconds=0), event(FAILED, seconds=10))
    assert firings(tenant, auto) == []  # two of three
    emit(capture, tenant, event(FAILED, seconds=20))
    assert len(firings(tenant, auto)) == 1
    # Fired eagerly: the rest of the window is spent, its late events count for nothing.
    emit(capture, tenant, event(FAILED, seconds=30), event(FAILED, seconds=40), event(FAILED, seconds=50))
    assert len(firings(tenant, auto)) == 1
    # The next window opens where the first ended.
    emit(capture, tenant, event(FAILED, seconds=70), event(FAILED, seconds=80))
    assert len(firings(tenant, auto)) == 1
    emit(capture, tenant, event(FAILED, seconds=90))
    assert len(firings(tenant, auto)) == 2


def test_events_spread_wider_than_the_window_do_not_fire(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=30)
    capture = django_capture_on_commit_callbacks
    for seconds in (0, 40, 80):
        # Each lands in a window of its own: first [t-15m, t+30s), then [t+30s, t+60s), …
        emit(capture, tenant, event(FAILED, seconds=seconds))
    # 0 counts in the first window; 40 lies beyond it, opens the next and counts there; 80 likewise.
    assert firings(tenant, auto) == []


def test_for_each_keeps_a_bucket_per_label_value(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED], threshold=2, within=300, for_each=["prefect.resource.id"])
    capture = django_capture_on_commit_callbacks
    emit(
        capture,
        tenant,
        event(FAILED, resource="prefect.flow-run.a"),
        event(FAILED, resource="prefect.flow-run.b"),
    )
    assert firings(tenant, auto) == []
    emit(capture, tenant, event(FAILED, seconds=5, resource="prefect.flow-run.a"))
    (firing,) = firings(tenant, auto)
    assert firing.triggering_labels == {"prefect.resource.id": "prefect.flow-run.a"}
    (triggered,) = emitted(tenant, "prefect.automation.triggered")
    assert triggered.payload["triggering_labels"] == {"prefect.resource.id": "prefect.flow-run.a"}


def test_for_each_reads_related_labels_by_role(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED], for_each=["related:deployment:prefect.resource.id"])
    dep = [{"prefect.resource.id": "prefect.deployment.d1", "prefect.resource.role": "deployment"}]
    emit(django_capture_on_commit_callbacks, tenant, event(FAILED, related=dep))
    (firing,) = firings(tenant, auto)
    assert firing.triggering_labels == {"related:deployment:prefect.resource.id": "prefect.deployment.d1"}


def test_after_then_expect(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(
        dev,
        tenant,
        after=["job.started"],
        expect=["job.finished"],
        within=60,
        for_each=["prefect.resource.id"],
    )
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, event("job.finished", resource="job.1"))
    assert firings(tenant, auto) == []  # no `after` seen: nothing to count in
    emit(capture, tenant, event("job.started", seconds=1, resource="job.1"))
    emit(capture, tenant, event("job.finished", seconds=2, resource="job.2"))  # another key
    assert firings(tenant, auto) == []
    emit(capture, tenant, event("job.finished", seconds=3, resource="job.1"))
    assert len(firings(tenant, auto)) == 1
    emit(capture, tenant, event("job.finished", seconds=4, resource="job.1"))
    assert len(firings(tenant, auto)) == 1  # the bucket closed with the firing; a new `after` reopens it


def test_the_same_event_in_after_and_expect_needs_a_second_one(
    tenant, dev, django_capture_on_commit_callbacks
):
    auto = automation(dev, tenant, after=["beat"], expect=["beat"], within=60)
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, event("beat"))
    assert firings(tenant, auto) == []
    emit(capture, tenant, event("beat", seconds=1))
    assert len(firings(tenant, auto)) == 1


def test_match_and_match_related(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(
        dev,
        tenant,
        expect=["prefect.flow-run.*"],
        match={"prefect.resource.id": "prefect.flow-run.*", "env": "!dev"},
        match_related={
            "prefect.resource.role": "deployment",
            "prefect.resource.id": ["prefect.deployment.d1"],
        },
    )
    d1 = [{"prefect.resource.id": "prefect.deployment.d1", "prefect.resource.role": "deployment"}]
    d2 = [{"prefect.resource.id": "prefect.deployment.d2", "prefect.resource.role": "deployment"}]
    capture = django_capture_on_commit_callbacks
    emit(
        capture,
        tenant,
        event(FAILED, related=d2),  # another deployment
        event(FAILED, related=[]),  # no deployment
        event(FAILED, related=d1, resource="prefect.task-run.1"),  # not a flow run
        event(FAILED, related=d1, env="dev"),  # a negated label
    )
    assert firings(tenant, auto) == []
    emit(capture, tenant, event(FAILED, related=d1, env="prod"))
    assert len(firings(tenant, auto)) == 1


def test_a_disabled_automation_is_not_evaluated(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED])
    capture = django_capture_on_commit_callbacks
    emit(capture, tenant, event(FAILED))  # loads the workspace's automations into the memo
    assert (
        dev.patch(f"{tenant.prefix}/automations/{auto}", {"enabled": False}, format="json").status_code == 204
    )
    emit(capture, tenant, event(FAILED, seconds=1))
    assert len(firings(tenant, auto)) == 1


def test_one_event_evaluated_twice_fires_once(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED])
    emit(django_capture_on_commit_callbacks, tenant, event(FAILED))
    stored = list(Event.objects.for_workspace(tenant.workspace.id).filter(event=FAILED))
    with django_capture_on_commit_callbacks(execute=True):
        assert triggers.events_stored(tenant.workspace.id, stored) == 0
    assert len(firings(tenant, auto)) == 1
    # The firing skipped as already written emits nothing and runs nothing again.
    assert len(emitted(tenant, "prefect.automation.triggered")) == 1
    assert len(emitted(tenant, "prefect.automation.resolved")) == 1
    assert len(action_runs(tenant)) == 1


def test_another_workspace_never_fires_an_automation(
    two_workspaces, api_client, django_capture_on_commit_callbacks
):
    from tests.conftest import bearer

    a, b = two_workspaces
    auto = automation(bearer(api_client, a.service_key), a, expect=[FAILED])
    emit(django_capture_on_commit_callbacks, b, event(FAILED), event(FAILED, seconds=1))
    assert firings(a, auto) == [] and firings(b) == []
    assert emitted(a, "prefect.automation.triggered") == emitted(b, "prefect.automation.triggered") == []
    emit(django_capture_on_commit_callbacks, a, event(FAILED))
    assert len(firings(a, auto)) == 1


def test_a_workspace_without_automations_costs_no_query(tenant, django_assert_num_queries):
    triggers.workspace_triggers(tenant.workspace.id)  # remembered
    stored = [Event(event=FAILED, resource={}, related=[])]
    with django_assert_num_queries(0):
        assert triggers.events_stored(tenant.workspace.id, stored) == 0


def test_the_sweep_deletes_windows_that_ended(tenant, dev, django_capture_on_commit_callbacks):
    auto = automation(dev, tenant, expect=[FAILED], threshold=5, within=60)
    emit(django_capture_on_commit_callbacks, tenant, event(FAILED))
    buckets = AutomationBucket.objects.for_workspace(tenant.workspace.id).filter(automation_id=auto)
    (bucket,) = buckets
    assert triggers.automation_buckets_sweep(now=bucket.end) == 0  # within the buffer
    assert triggers.automation_buckets_sweep(now=bucket.end + triggers.EXPIRED_BUCKET_BUFFER) == 1
    assert not buckets.all().exists()


def test_a_batch_costs_the_same_queries_however_many_events_match(tenant, dev):
    """A stored batch is evaluated in one transaction: its buckets locked and read in one
    statement, written back in one, so a batch of 40 matching events costs what a batch of 4
    does (neither fires)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.orchestration.automations.test_trigger_concurrency import _stored

    automation(dev, tenant, expect=[FAILED], threshold=1000, within=3600, for_each=["prefect.resource.id"])
    triggers.workspace_triggers(tenant.workspace.id)  # remembered
    counts = []
    for size in (4, 40):
        # Two keys, so the batch reads and writes more than one bucket.
        batch = _stored(tenant, *(event(FAILED, seconds=i, resource=f"prefect.flow-run.{i % 2}-{size}")
                                  for i in range(size)))  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            assert triggers.events_stored(tenant.workspace.id, batch) == 0
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    buckets = AutomationBucket.objects.for_workspace(tenant.workspace.id)
    assert sorted(b.count for b in buckets) == [2, 2, 20, 20]


def test_a_batch_writes_its_firings_together(tenant, dev, django_capture_on_commit_callbacks):
    """A stored batch's firings are written at its end: the firing rows, their triggered and
    resolved events and those events' resources one statement each, and one hand-off of their
    actions after commit; so a batch that fires 20 times costs the statements one that fires twice
    does, and each firing's events are what one firing alone emits."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orchestration import tasks
    from orchestration.models import EventResource
    from tests.orchestration.automations.test_trigger_concurrency import _stored

    auto = automation(dev, tenant, expect=[FAILED], threshold=2)
    ws = tenant.workspace.id
    triggers.workspace_triggers(ws)  # remembered
    handed_off = []
    triggers.firing_dispatch_set(
        lambda workspace_id, firing_ids: handed_off.append((workspace_id, firing_ids))
    )
    counts = []
    try:
        for size in (4, 40):
            batch = _stored(tenant, *(event(FAILED, seconds=size + i) for i in range(size)))
            with (
                CaptureQueriesContext(connection) as queries,
                django_capture_on_commit_callbacks(execute=True),
            ):
                assert triggers.events_stored(ws, batch) == size // 2
            counts.append(len(queries))
    finally:
        triggers.firing_dispatch_set(tasks.automation_firings_dispatch)
    assert counts[0] == counts[1], counts
    rows = firings(tenant, auto)
    assert len(rows) == 22
    assert [(w, len(ids)) for w, ids in handed_off] == [(ws, 2), (ws, 20)]
    assert {i for _, ids in handed_off for i in ids} == {r.id for r in rows}
    triggered = {str(e.id): e for e in emitted(tenant, "prefect.automation.triggered")}
    resolved = emitted(tenant, "prefect.automation.resolved")
    assert len(triggered) == len(resolved) == 22
    sources = {str(e.id) for e in Event.objects.for_workspace(ws).filter(event=FAILED)}
    for row in rows:
        mine = triggered[str(row.triggered_event_id)]
        assert row.triggering_event["id"] in sources and row.triggering_event_id == uuid.UUID(
            row.triggering_event["id"]
        )
        assert mine.related == [
            {
                "prefect.resource.id": f"prefect.event.{row.triggering_event_id}",
                "prefect.resource.role": "triggering-event",
            }
        ]
        assert mine.payload == {"triggering_labels": {}, "triggering_event": row.triggering_event}
    # Every emitted event has its resources: the automation, and the event that triggered it.
    for each in [*triggered.values(), *resolved]:
        assert sorted(
            EventResource.objects.for_workspace(ws)
            .filter(event_id=each.id)
            .values_list("resource_id", "resource_role")
        ) == sorted(  # fmt: skip
            [(f"prefect.automation.{auto}", ""), (each.related[0]["prefect.resource.id"], "triggering-event")]
        )
