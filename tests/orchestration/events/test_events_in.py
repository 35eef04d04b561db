"""``…/events/in``: both handshakes, refusals, de-duplication, tenant isolation and batching."""

from __future__ import annotations

import asyncio
import json

import pytest

from accounts.api_keys.services import api_key_create
from accounts.permissions import WorkspaceRole
from audit.actors import SYSTEM
from orchestration.events import consumers
from orchestration.events.services import events_ingest
from orchestration.models import Event, TaskRun, TaskRunState
from tests.factories import GrantFactory, ServiceAccountFactory
from tests.orchestration.events.conftest import (
    captured,
    communicator,
    events_path,
    make_event,
    open_cloud,
    open_prefect,
    refused,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _stored_ids(workspace) -> set[str]:
    return {str(i) for i in Event.objects.for_workspace(workspace.pk).values_list("id", flat=True)}


def _key_with_role(tenant, role) -> str:
    robot = ServiceAccountFactory(account=tenant.account)
    GrantFactory(workspace=tenant.workspace, service_account=robot, role=role)
    return api_key_create(owner=robot, name=role, actor=SYSTEM)[1]


async def _send_all(ws, events) -> None:
    for event in events:
        await ws.send_to(text_data=json.dumps(event))


# --- Handshakes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["id", "handle"])
def test_prefect_handshake_with_the_key_as_token_stores_every_event(tenant, by):
    events = captured("task_retry")

    async def scenario():
        ws = await open_prefect(events_path(tenant, "in", by=by), tenant.service_key)
        await _send_all(ws, events)
        await ws.disconnect()

    run(scenario)
    assert _stored_ids(tenant.workspace) == {e["id"] for e in events}


def test_prefect_handshake_with_a_null_token_uses_the_bearer_header(tenant):
    events = captured("seq")

    async def scenario():
        ws = await open_prefect(events_path(tenant, "in"), None, authorization=f"Bearer {tenant.member_key}")
        await _send_all(ws, events)
        await ws.disconnect()

    run(scenario)
    assert _stored_ids(tenant.workspace) == {e["id"] for e in events}


@pytest.mark.parametrize("scheme", ["bearer", "Bearer", "BEARER"])
def test_cloud_handshake_header_only_and_the_first_frame_is_an_event(tenant, scheme):
    events = captured("task_retry")

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key, scheme=scheme)
        await _send_all(ws, events)  # no auth message: the first frame is an event
        await ws.disconnect()

    run(scenario)
    assert _stored_ids(tenant.workspace) == {e["id"] for e in events}
    # The heartbeat (first frame) is stored like any other event.
    assert (
        Event.objects.for_workspace(tenant.workspace.pk).filter(event="prefect.flow-run.heartbeat").count()
        == 1
    )


def test_events_are_stored_while_the_socket_stays_open(tenant):
    """Batches are flushed on a timer, not only when the socket closes."""
    events = captured("seq")

    async def scenario():
        from channels.db import database_sync_to_async

        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        await _send_all(ws, events)
        stored = set()
        for _ in range(40):
            await asyncio.sleep(0.05)
            stored = await database_sync_to_async(_stored_ids)(tenant.workspace)
            if len(stored) == len(events):
                break
        await ws.disconnect()
        return stored

    assert run(scenario) == {e["id"] for e in events}


# --- Refusals ---------------------------------------------------------------------------------------


def test_a_socket_without_credentials_is_refused(tenant):
    async def scenario():
        # No subprotocol and no header: refused before accepting (HTTP 403).
        await refused(communicator(events_path(tenant, "in")))
        # The prefect handshake with a null token and no header.
        await refused(communicator(events_path(tenant, "in"), subprotocols=["prefect"]))

    run(scenario)


def test_bad_keys_are_refused_in_both_handshakes(tenant):
    bad = tenant.service_key[:-4] + "AAAA"

    async def scenario():
        await refused(communicator(events_path(tenant, "in"), authorization=f"bearer {bad}"))
        await refused(communicator(events_path(tenant, "in"), authorization="bearer"))
        await refused(communicator(events_path(tenant, "in"), authorization=f"Basic {tenant.service_key}"))
        await refused(communicator(events_path(tenant, "in"), subprotocols=["prefect"]), auth_token=bad)
        await refused(communicator(events_path(tenant, "in"), subprotocols=["prefect"]), auth_token="garbage")

    run(scenario)


def test_a_first_message_other_than_auth_closes_the_prefect_handshake(tenant):
    async def scenario():
        ws = communicator(events_path(tenant, "in"), subprotocols=["prefect"])
        assert (await ws.connect())[0]
        await ws.send_json_to(make_event())
        output = await ws.receive_output(timeout=2)
        assert output["type"] == "websocket.close" and output["code"] == 1008

    run(scenario)
    assert Event.objects.unscoped().count() == 0


def test_keys_of_another_tenant_and_unknown_workspaces_are_refused_alike(two_workspaces):
    a, b = two_workspaces
    paths = [
        events_path(b, "in"),
        events_path(b, "in", by="handle"),
        f"/api/accounts/{a.account.id}/workspaces/{b.workspace.id}/events/in",  # B's workspace under A
        f"/api/accounts/{a.account.id}/workspaces/no-such-workspace/events/in",
        "/api/accounts/00000000-0000-0000-0000-000000000000/workspaces/x/events/in",
    ]

    async def scenario():
        for path in paths:
            for key in (a.member_key, a.service_key):
                await refused(communicator(path, authorization=f"bearer {key}"))
                await refused(communicator(path, subprotocols=["prefect"]), auth_token=key)

    run(scenario)
    assert Event.objects.unscoped().count() == 0


def test_a_viewer_key_may_not_emit_events(tenant):
    viewer_key = _key_with_role(tenant, WorkspaceRole.VIEWER)

    async def scenario():
        await refused(communicator(events_path(tenant, "in"), authorization=f"bearer {viewer_key}"))
        await refused(
            communicator(events_path(tenant, "in"), subprotocols=["prefect"]), auth_token=viewer_key
        )

    run(scenario)


def test_a_worker_key_may_emit_events(tenant):
    worker_key = _key_with_role(tenant, WorkspaceRole.WORKER)
    event = make_event("prefect.worker.started")

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), worker_key)
        await ws.send_json_to(event)
        await ws.disconnect()

    run(scenario)
    assert _stored_ids(tenant.workspace) == {event["id"]}


def test_a_revoked_key_stops_being_served(tenant, monkeypatch):
    from accounts.api_keys.models import ApiKey
    from accounts.api_keys.services import api_key_revoke
    from audit.actors import SYSTEM

    monkeypatch.setattr(consumers, "REAUTHORIZE_EVERY", 0.0)
    first, second = make_event(), make_event()

    async def scenario():
        from channels.db import database_sync_to_async

        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        await ws.send_json_to(first)
        await asyncio.sleep(0.3)
        key = await database_sync_to_async(ApiKey.objects.get)(service_account=tenant.service_account)
        await database_sync_to_async(api_key_revoke)(key=key, actor=SYSTEM)
        await ws.send_json_to(second)
        output = await ws.receive_output(timeout=2)
        assert output["type"] == "websocket.close" and output["code"] == 1008

    run(scenario)
    assert _stored_ids(tenant.workspace) == {first["id"]}


# --- Storage ----------------------------------------------------------------------------------------


def test_resent_events_are_stored_once(tenant):
    events = captured("task_retry")

    async def scenario():
        # The client re-sends its unconfirmed events on a new socket after a reconnect.
        for _ in range(2):
            ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
            await _send_all(ws, events + events[:2])
            await ws.disconnect()

    run(scenario)
    assert Event.objects.for_workspace(tenant.workspace.pk).count() == len(events)
    run_id = TaskRun.objects.for_workspace(tenant.workspace.pk).get().pk
    assert TaskRunState.objects.for_workspace(tenant.workspace.pk).filter(task_run_id=run_id).count() == 4
    assert events_ingest(workspace_id=tenant.workspace.pk, events=events) == 0


def test_an_event_id_of_another_workspace_is_never_touched(two_workspaces):
    a, b = two_workspaces
    original = make_event("a.original", payload={"owner": "a"})
    assert events_ingest(workspace_id=a.workspace.pk, events=[original]) == 1
    before = Event.objects.unscoped().values().get(pk=original["id"])

    clash = {**original, "event": "b.clash", "payload": {"owner": "b"}}
    other = make_event("b.other")

    async def scenario():
        ws = await open_cloud(events_path(b, "in"), b.service_key)
        await _send_all(ws, [clash, other])
        await ws.disconnect()

    run(scenario)
    assert Event.objects.unscoped().values().get(pk=original["id"]) == before
    assert _stored_ids(b.workspace) == {other["id"]}
    assert events_ingest(workspace_id=b.workspace.pk, events=[clash]) == 0


def test_invalid_frames_are_dropped_and_the_socket_carries_on(tenant):
    good = make_event()
    too_long = make_event("x" * 300)
    no_resource_id = make_event()
    no_resource_id["resource"] = {"prefect.resource.name": "nameless"}

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        await ws.send_to(text_data="not json")
        await ws.send_to(text_data="[1, 2]")
        await _send_all(ws, [too_long, no_resource_id, good])
        await ws.disconnect()

    run(scenario)
    assert _stored_ids(tenant.workspace) == {good["id"]}


def test_events_are_written_in_batches(tenant, monkeypatch):
    calls = []
    real = consumers._store_in_thread

    async def counting(workspace_id, batch):
        calls.append(len(batch))
        return await real(workspace_id, batch)

    monkeypatch.setattr(consumers, "_store_in_thread", counting)
    events = [make_event(f"test.batch.{i}") for i in range(1200)]

    async def scenario():
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        await _send_all(ws, events)
        await ws.disconnect(timeout=10)

    run(scenario)
    assert Event.objects.for_workspace(tenant.workspace.pk).count() == 1200
    assert sum(calls) == 1200
    assert len(calls) <= 12, calls  # batches, not one write per event
    assert max(calls) <= consumers.EventsInConsumer.MAX_BATCH


def test_concurrent_sockets_all_get_stored(two_workspaces):
    a, b = two_workspaces
    per_socket = 150
    plans = [(a, [make_event(f"a.{s}.{i}") for i in range(per_socket)]) for s in range(3)]
    plans += [(b, [make_event(f"b.{s}.{i}") for i in range(per_socket)]) for s in range(3)]

    async def one(tenant, events):
        ws = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        for event in events:
            await ws.send_json_to(event)
            await asyncio.sleep(0)
        await ws.disconnect(timeout=20)

    async def scenario():
        await asyncio.gather(*(one(t, evs) for t, evs in plans))

    run(scenario)
    assert Event.objects.for_workspace(a.workspace.pk).count() == 3 * per_socket
    assert Event.objects.for_workspace(b.workspace.pk).count() == 3 * per_socket
