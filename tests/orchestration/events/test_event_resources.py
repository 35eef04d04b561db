"""``EventResource``: the resources of each stored event, written at ingest and read by the event
feed of one resource (``any_resource``/``related`` by id). That the filters answer the same as the
Python predicate is ``test_events_api``'s grammar test; here: what is written, once, in whose
workspace, what deletes it, the migration's copy, and that the feed reads it."""

from __future__ import annotations

import datetime as dt
import importlib
import types

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.events.services import event_record_on_commit, events_ingest
from orchestration.models import Event, EventResource
from orchestration.persistence.write_batch import deferred_inserts, flush
from tests.conftest import bearer
from tests.orchestration.events.conftest import make_event, now_iso

pytestmark = pytest.mark.django_db

FLOW = "prefect.flow.3f2e0d54-0000-4000-8000-000000000001"
DEPLOYMENT = "prefect.deployment.3f2e0d54-0000-4000-8000-000000000002"


def _flow_run_event(run: int, **extra) -> dict:
    return make_event(
        "prefect.flow-run.Completed",
        resource_id=f"prefect.flow-run.3f2e0d54-0000-4000-8000-00000000010{run}",
        related=[
            {"prefect.resource.id": FLOW, "prefect.resource.role": "flow"},
            {"prefect.resource.id": DEPLOYMENT, "prefect.resource.role": "deployment"},
            {"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"},
            {"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"},
        ],
        **extra,
    )


def _rows(workspace_id) -> set[tuple]:
    return set(
        EventResource.objects.for_workspace(workspace_id).values_list(
            "event_id", "resource_id", "resource_role", "occurred"
        )
    )


def _expected(workspace_id) -> set[tuple]:
    out = set()
    for event in Event.objects.for_workspace(workspace_id):
        out.add((event.id, event.resource_id, "", event.occurred))
        for related in event.related:
            out.add(
                (event.id, related["prefect.resource.id"], related["prefect.resource.role"], event.occurred)
            )
    return out


def test_ingest_writes_each_resource_of_each_event_once(tenant):
    events = [_flow_run_event(1), _flow_run_event(2)]
    assert events_ingest(workspace_id=tenant.workspace.pk, events=events) == 2
    rows = _rows(tenant.workspace.pk)
    # The flow run (role ""), the flow, the deployment and the tag (listed twice, kept once).
    assert len(rows) == 8
    assert rows == _expected(tenant.workspace.pk)
    assert {(r[1], r[2]) for r in rows if str(r[0]) == events[0]["id"]} == {
        (events[0]["resource"]["prefect.resource.id"], ""),
        (FLOW, "flow"),
        (DEPLOYMENT, "deployment"),
        ("prefect.tag.nightly", "tag"),
    }

    # Sent again (a client re-sends what was not confirmed), alone or with a new one.
    assert events_ingest(workspace_id=tenant.workspace.pk, events=events) == 0
    assert events_ingest(workspace_id=tenant.workspace.pk, events=[events[0], _flow_run_event(3)]) == 1
    assert EventResource.objects.for_workspace(tenant.workspace.pk).count() == 12
    assert _rows(tenant.workspace.pk) == _expected(tenant.workspace.pk)


def test_an_event_id_of_another_workspace_writes_nothing_here(two_workspaces):
    a, b = two_workspaces
    event = _flow_run_event(1)
    events_ingest(workspace_id=a.workspace.pk, events=[event])
    assert events_ingest(workspace_id=b.workspace.pk, events=[event]) == 0
    assert EventResource.objects.for_workspace(b.workspace.pk).count() == 0
    assert EventResource.objects.for_workspace(a.workspace.pk).count() == 4


def test_a_server_event_writes_its_resources_at_once_or_with_the_state_change(tenant):
    ws = tenant.workspace.pk
    event_record_on_commit(workspace_id=ws, event=_flow_run_event(1))
    assert _rows(ws) == _expected(ws) and len(_rows(ws)) == 4

    # Inside a state change on PostgreSQL the rows wait for the change's one statement.
    with deferred_inserts() as pending:
        event_record_on_commit(workspace_id=ws, event=_flow_run_event(2))
        if pending is not None:
            assert len(pending) == 5  # the event and its four resources
            flush(pending)
    assert _rows(ws) == _expected(ws) and len(_rows(ws)) == 8


def test_a_deleted_event_takes_its_resources_along(two_workspaces):
    a, b = two_workspaces
    events_ingest(workspace_id=a.workspace.pk, events=[_flow_run_event(1), _flow_run_event(2)])
    events_ingest(workspace_id=b.workspace.pk, events=[_flow_run_event(1)])
    Event.objects.for_workspace(a.workspace.pk).filter(resource_id__endswith="101").delete()
    assert _rows(a.workspace.pk) == _expected(a.workspace.pk) and len(_rows(a.workspace.pk)) == 4
    b.workspace.delete()
    assert EventResource.objects.unscoped().filter(workspace_id=b.workspace.pk).count() == 0
    assert len(_rows(a.workspace.pk)) == 4


def test_the_migration_copies_existing_events_once(two_workspaces, monkeypatch):
    a, b = two_workspaces
    events_ingest(workspace_id=a.workspace.pk, events=[_flow_run_event(1), _flow_run_event(2)])
    events_ingest(workspace_id=b.workspace.pk, events=[_flow_run_event(3)])
    EventResource.objects.unscoped().all().delete()
    migration = importlib.import_module("orchestration.migrations.0011_event_resources")
    editor = types.SimpleNamespace(connection=connection)
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches
    migration.backfill(apps, editor)
    migration.backfill(apps, editor)  # again: nothing twice
    for tenant in (a, b):
        assert _rows(tenant.workspace.pk) == _expected(tenant.workspace.pk)
    assert EventResource.objects.unscoped().count() == 12


def _feed(client, tenant, criteria) -> list[str]:
    body = {"filter": {"occurred": {"since": now_iso(-dt.timedelta(days=1))}, **criteria}}
    response = client.post(f"{tenant.prefix}/events/filter", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["total"] == len(response.json()["events"])
    return sorted(e["id"] for e in response.json()["events"])


def test_the_feed_of_one_resource_reads_the_side_table_and_stays_in_its_workspace(api_client, two_workspaces):
    a, b = two_workspaces
    mine = [_flow_run_event(1), _flow_run_event(2)]
    theirs = [_flow_run_event(1)]  # the same resources, in B
    events_ingest(workspace_id=a.workspace.pk, events=[*mine, make_event("test.other")])
    events_ingest(workspace_id=b.workspace.pk, events=theirs)
    client = bearer(api_client, a.service_key)
    ids = sorted(e["id"] for e in mine)
    run = mine[0]["resource"]["prefect.resource.id"]

    with CaptureQueriesContext(connection) as queries:
        assert _feed(client, a, {"any_resource": {"id": [FLOW]}}) == ids
    assert any(EventResource._meta.db_table in q["sql"] for q in queries.captured_queries)
    assert _feed(client, a, {"related": {"id": [DEPLOYMENT]}}) == ids
    assert _feed(client, a, {"related": {"resources_in_roles": [[FLOW, "flow"]]}}) == ids
    assert _feed(client, a, {"any_resource": {"id": [run]}}) == [mine[0]["id"]]
    assert _feed(client, a, {"related": {"id": [run]}}) == []  # the primary resource is not related

    client_b = bearer(api_client, b.service_key)
    assert _feed(client_b, b, {"any_resource": {"id": [FLOW]}}) == [theirs[0]["id"]]

    # Without its side rows an event is not in the feed: the feed reads the side table.
    EventResource.objects.for_workspace(a.workspace.pk).filter(event_id=mine[1]["id"]).delete()
    client = bearer(api_client, a.service_key)
    assert _feed(client, a, {"any_resource": {"id": [FLOW]}}) == [mine[0]["id"]]


def test_a_related_id_or_role_too_long_to_keep_is_refused_like_the_resource_id(tenant):
    too_long = "prefect.tag." + "x" * 244  # 256 characters
    for related in (
        {"prefect.resource.id": too_long, "prefect.resource.role": "tag"},
        {"prefect.resource.id": "prefect.tag.x", "prefect.resource.role": "r" * 256},
    ):
        assert events_ingest(workspace_id=tenant.workspace.pk, events=[make_event(related=[related])]) == 0
    fits = {"prefect.resource.id": too_long[:255], "prefect.resource.role": "r" * 255}
    assert events_ingest(workspace_id=tenant.workspace.pk, events=[make_event(related=[fits])]) == 1
    assert (too_long[:255], "r" * 255) in {(r[1], r[2]) for r in _rows(tenant.workspace.pk)}


def test_a_resource_feed_pages_on_the_side_table_as_the_events_would(api_client, tenant):
    """The feed of one resource is chosen and counted on ``EventResource`` alone; the same pages,
    total and order (occurred, then id; ties included) as the general filter, which reads the
    events (here made to run by an event-name criterion that every event meets), and an event
    naming the resource twice (its own and related) comes once."""
    occurred = now_iso(-dt.timedelta(minutes=5))
    events = [_flow_run_event(i % 10, occurred=occurred if i % 3 == 0 else now_iso(-dt.timedelta(seconds=i)))
              for i in range(25)]  # fmt: skip
    twice = make_event(
        "prefect.flow.touched",
        resource_id=FLOW,
        related=[{"prefect.resource.id": FLOW, "prefect.resource.role": "flow"}],
    )
    events_ingest(workspace_id=tenant.workspace.pk, events=[*events, twice, make_event("test.other")])
    client = bearer(api_client, tenant.service_key)

    def pages(criteria: dict, order: str) -> tuple[int, list[str]]:
        body = {
            "filter": {"occurred": {"since": now_iso(-dt.timedelta(days=1))}, "order": order, **criteria},
            "limit": 7,
        }
        answer = client.post(f"{tenant.prefix}/events/filter", body, format="json").json()
        total, ids = answer["total"], [e["id"] for e in answer["events"]]
        while answer.get("next_page"):
            answer = client.get(answer["next_page"]).json()
            ids += [e["id"] for e in answer["events"]]
        return total, ids

    for order in ("DESC", "ASC"):
        for criteria in ({"any_resource": {"id": [FLOW]}}, {"related": {"id": [FLOW], "role": ["flow"]}}):
            with CaptureQueriesContext(connection) as queries:
                total, ids = pages(criteria, order)
            assert not any('FROM "orchestration_event" WHERE' in q["sql"] and "COUNT" in q["sql"]
                           for q in queries.captured_queries)  # fmt: skip
            general = pages({**criteria, "event": {"prefix": ["prefect."]}}, order)
            assert (total, ids) == general
            assert len(ids) == len(set(ids)) == total
        assert twice["id"] in pages({"any_resource": {"id": [FLOW]}}, order)[1]
