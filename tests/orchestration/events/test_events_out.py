"""``…/events/out``: auth, the filter message, backfill, live delivery and filtering."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from accounts.api_keys.services import api_key_create
from accounts.permissions import WorkspaceRole
from audit.actors import SYSTEM
from orchestration.events.schemas import EventIn
from orchestration.events.services import event_record_on_commit, events_ingest, events_store
from tests.factories import GrantFactory, ServiceAccountFactory
from tests.orchestration.events.conftest import (
    captured,
    communicator,
    events_path,
    make_event,
    now_iso,
    open_cloud,
    open_prefect,
    refused,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)

CANCELLING = "prefect.flow-run.Cancelling"


def client_filter(names=None, *, since=dt.timedelta(minutes=-1), **extra):
    """The filter the client's cancellation observer sends (``FlowRunCancellingObserver``)."""
    flt = {
        "occurred": {"since": now_iso(since), "until": now_iso(dt.timedelta(days=365))},
        "event": {"prefix": None, "exclude_prefix": None, "name": names, "exclude_name": None},
        "resource": None,
        "related": None,
        "any_resource": None,
        "id": {"id": []},
        "text": None,
        "order": "DESC",
    }
    flt.update(extra)
    return flt


def cancelling_event(flow_run_id=None, **changes):
    event = captured("flow_run_cancelling")
    event["id"] = str(uuid.uuid4())
    event["occurred"] = now_iso()
    if flow_run_id:
        event["resource"]["prefect.resource.id"] = f"prefect.flow-run.{flow_run_id}"
    event.update(changes)
    return event


async def subscribe(tenant, flt, *, key=None, backfill=None):
    ws = await open_prefect(events_path(tenant, "out"), key or tenant.service_key)
    message = {"type": "filter", "filter": flt}
    if backfill is not None:
        message["backfill"] = backfill
    await ws.send_json_to(message)
    return ws


async def received_events(ws, *, within: float = 1.0) -> list[dict]:
    """Every event pushed until nothing arrives for ``within`` seconds."""
    events = []
    # (A receive that times out ends the application under test: wait with receive_nothing.)
    while not await ws.receive_nothing(timeout=within):
        message = await ws.receive_json_from()
        assert message["type"] == "event"
        events.append(message["event"])
    return events


async def no_more(ws, within=0.5):
    assert await ws.receive_nothing(timeout=within)


def _viewer_key(tenant):
    robot = ServiceAccountFactory(account=tenant.account)
    GrantFactory(workspace=tenant.workspace, service_account=robot, role=WorkspaceRole.VIEWER)
    return api_key_create(owner=robot, name="viewer", actor=SYSTEM)[1]


# --- Auth -------------------------------------------------------------------------------------------


def test_a_viewer_may_subscribe_and_cloud_mode_sends_the_key_as_token(tenant):
    viewer_key = _viewer_key(tenant)

    async def scenario():
        for key in (viewer_key, tenant.service_key, tenant.member_key):
            ws = await subscribe(tenant, client_filter([CANCELLING]), key=key)
            await no_more(ws, 0.2)
            await ws.disconnect()

    run(scenario)


def test_subscribers_without_valid_credentials_are_refused(two_workspaces):
    a, b = two_workspaces

    async def scenario():
        await refused(communicator(events_path(a, "out"), subprotocols=["prefect"]))
        await refused(communicator(events_path(a, "out"), subprotocols=["prefect"]), auth_token="pnb_nope")
        await refused(communicator(events_path(a, "out")))
        for key in (b.member_key, b.service_key):
            await refused(communicator(events_path(a, "out"), subprotocols=["prefect"]), auth_token=key)
            await refused(communicator(events_path(a, "out"), authorization=f"bearer {key}"))

    run(scenario)


def test_a_member_without_see_events_is_refused(tenant):
    from tests.factories import MembershipFactory, UserFactory

    outsider = UserFactory()
    MembershipFactory(account=tenant.account, user=outsider)  # in the account, no workspace grant
    _, key = api_key_create(owner=outsider, name="k", actor=SYSTEM)

    async def scenario():
        await refused(communicator(events_path(tenant, "out"), subprotocols=["prefect"]), auth_token=key)

    run(scenario)


def test_the_message_after_auth_must_be_a_filter(tenant):
    async def scenario():
        ws = await open_prefect(events_path(tenant, "out"), tenant.service_key)
        await ws.send_json_to({"type": "hello"})
        output = await ws.receive_output(timeout=2)
        assert output["type"] == "websocket.close" and output["code"] == 1002

        ws = await open_prefect(events_path(tenant, "out"), tenant.service_key)
        await ws.send_json_to({"type": "filter", "filter": {"occurred": {"since": "yesterday-ish"}}})
        output = await ws.receive_output(timeout=2)
        assert output["type"] == "websocket.close" and output["code"] == 1002

    run(scenario)


# --- Backfill ---------------------------------------------------------------------------------------


def test_backfill_sends_stored_matches_oldest_first_within_the_window(tenant):
    old = cancelling_event(occurred=now_iso(dt.timedelta(minutes=-5)))
    new = cancelling_event()
    too_old = cancelling_event(occurred=now_iso(dt.timedelta(minutes=-30)))  # before `since`
    other = make_event("prefect.flow-run.Running")
    events_ingest(workspace_id=tenant.workspace.pk, events=[new, other, too_old, old])

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING], since=dt.timedelta(minutes=-10)))
        got = await received_events(ws, within=0.5)
        await ws.disconnect()
        return got

    got = run(scenario)
    assert [e["id"] for e in got] == [old["id"], new["id"]]
    assert got[1]["event"] == CANCELLING and got[1]["received"]
    assert got[1]["resource"] == new["resource"] and got[1]["related"] == new["related"]
    assert got[1]["payload"] == new["payload"] and got[1]["follows"] == new["follows"]


def test_backfill_is_bounded_to_fifteen_minutes_and_can_be_declined(tenant):
    recent = cancelling_event(occurred=now_iso(dt.timedelta(minutes=-2)))
    ancient = cancelling_event(occurred=now_iso(dt.timedelta(minutes=-40)))
    events_ingest(workspace_id=tenant.workspace.pk, events=[recent, ancient])

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING], since=dt.timedelta(hours=-2)))
        got = [e["id"] for e in await received_events(ws, within=0.5)]
        await ws.disconnect()
        ws = await subscribe(tenant, client_filter([CANCELLING]), backfill=False)
        await no_more(ws)
        await ws.disconnect()
        return got

    assert run(scenario) == [recent["id"]]


def test_backfill_pages_through_many_events(tenant, monkeypatch):
    from orchestration.events.consumers import EventsOutConsumer

    monkeypatch.setattr(EventsOutConsumer, "BACKFILL_PAGE_SIZE", 7)
    events = [make_event("test.many", occurred=now_iso(dt.timedelta(seconds=-50 + i))) for i in range(30)]
    events_ingest(workspace_id=tenant.workspace.pk, events=events)

    async def scenario():
        ws = await subscribe(tenant, client_filter(["test.many"]))
        got = await received_events(ws, within=0.5)
        await ws.disconnect()
        return [e["id"] for e in got]

    assert run(scenario) == [e["id"] for e in events]


# --- Live -------------------------------------------------------------------------------------------


def test_an_engine_event_is_pushed_live_after_commit(tenant):
    flow_run_id = uuid.uuid4()
    event = cancelling_event(flow_run_id)

    def emit_in_a_transaction():
        with transaction.atomic():
            event_record_on_commit(workspace_id=tenant.workspace.pk, event=event)

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]))
        await no_more(ws, 0.2)
        started = time.monotonic()
        await database_sync_to_async(emit_in_a_transaction)()
        message = await ws.receive_json_from(timeout=2)
        latency = time.monotonic() - started
        await no_more(ws)
        await ws.disconnect()
        return message, latency

    message, latency = run(scenario)
    assert message["type"] == "event" and message["event"]["id"] == event["id"]
    assert message["event"]["resource"]["prefect.resource.id"] == f"prefect.flow-run.{flow_run_id}"
    assert latency < 1.0


def test_a_rolled_back_engine_event_is_neither_stored_nor_pushed(tenant):
    from orchestration.models import Event

    event = cancelling_event()

    def emit_and_roll_back():
        try:
            with transaction.atomic():
                event_record_on_commit(workspace_id=tenant.workspace.pk, event=event)
                raise RuntimeError("the state change failed")
        except RuntimeError:
            pass

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]))
        await database_sync_to_async(emit_and_roll_back)()
        await no_more(ws, 1.5)
        await ws.disconnect()

    run(scenario)
    assert not Event.objects.unscoped().filter(pk=event["id"]).exists()


def test_events_from_events_in_reach_subscribers_with_their_filter(tenant):
    task_events = captured("task_retry")
    flow_run = "prefect.flow-run.5b7ab16d-3342-4dcd-bcb6-89397780f7b4"
    for event in task_events:
        event["occurred"] = now_iso()

    async def scenario():
        by_prefix = await subscribe(tenant, client_filter(None, event={"prefix": ["prefect.task-run."]}))
        by_related = await subscribe(
            tenant,
            client_filter(
                None,
                related={"id": [flow_run], "role": ["flow-run"]},
                event={"name": ["prefect.task-run.Completed"]},
            ),
        )
        cancelling = await subscribe(tenant, client_filter([CANCELLING]))
        started = time.monotonic()
        emitter = await open_cloud(events_path(tenant, "in"), tenant.service_key)
        for event in task_events:
            await emitter.send_json_to(event)
        first = await by_prefix.receive_json_from(timeout=2)
        latency = time.monotonic() - started
        rest = await received_events(by_prefix, within=0.5)
        related = await received_events(by_related, within=0.3)
        await no_more(cancelling, 0.2)
        await emitter.disconnect()
        for ws in (by_prefix, by_related, cancelling):
            await ws.disconnect()
        return [first["event"], *rest], related, latency

    by_prefix, related, latency = run(scenario)
    assert [e["id"] for e in by_prefix] == [e["id"] for e in task_events[1:]]
    assert [e["event"] for e in related] == ["prefect.task-run.Completed"]
    assert latency < 1.0


def test_each_workspace_only_sees_its_own_events(two_workspaces):
    a, b = two_workspaces
    event_a, event_b = cancelling_event(), cancelling_event()

    async def scenario():
        ws_a = await subscribe(a, client_filter([CANCELLING]))
        ws_b = await subscribe(b, client_filter([CANCELLING]))
        await database_sync_to_async(events_ingest)(workspace_id=a.workspace.pk, events=[event_a])
        await database_sync_to_async(events_ingest)(workspace_id=b.workspace.pk, events=[event_b])
        got_a = await received_events(ws_a, within=0.5)
        got_b = await received_events(ws_b, within=0.3)
        await ws_a.disconnect()
        await ws_b.disconnect()
        return got_a, got_b

    got_a, got_b = run(scenario)
    assert [e["id"] for e in got_a] == [event_a["id"]]
    assert [e["id"] for e in got_b] == [event_b["id"]]


def test_an_event_is_not_sent_twice_across_backfill_and_live(tenant):
    event = cancelling_event()
    events_ingest(workspace_id=tenant.workspace.pk, events=[event])

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]))
        first = await received_events(ws, within=0.3)
        # The same id published again (a re-sent event is not stored twice, so not published
        # twice either; this forces the publication to check the subscriber's own de-duplication).
        from orchestration.events.services import events_publish, publication_items
        from orchestration.models import Event

        row = await database_sync_to_async(Event.objects.unscoped().get)(pk=event["id"])
        await events_publish(tenant.workspace.pk, publication_items([row]))
        again = await received_events(ws, within=0.5)
        await ws.disconnect()
        return first, again

    first, again = run(scenario)
    assert [e["id"] for e in first] == [event["id"]]
    assert again == []


def test_with_the_in_memory_layer_events_stored_elsewhere_still_arrive(tenant):
    """Another process (a Celery worker) stores an event: nothing is published to this process's
    in-memory layer, and the subscriber catches up from storage."""
    if settings.REDIS_URL:
        pytest.skip("only the in-memory hub polls (with Redis, every process publishes)")
    event = cancelling_event()

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]))
        await no_more(ws, 0.2)
        await database_sync_to_async(events_store)(
            workspace_id=tenant.workspace.pk, events=[EventIn(**event)]
        )
        message = await ws.receive_json_from(timeout=3)
        await ws.disconnect()
        return message

    assert run(scenario)["event"]["id"] == event["id"]


def test_a_subscriber_that_misses_a_publication_is_told_to_reconnect_and_catch_up(tenant):
    """The layer dropped a publication meant for this socket (Redis does, past a channel's
    capacity): the next publication's number jumps, and the socket is closed with a reason the
    client acts on (it reconnects and backfills), instead of going on without the missed events."""
    from orchestration.events.consumers import CLOSE_TRY_AGAIN_LATER, MISSED_EVENTS_REASON
    from orchestration.events.services import events_publish, publication_items
    from orchestration.models import Event

    first, missed, later = cancelling_event(), cancelling_event(), cancelling_event()
    events_ingest(workspace_id=tenant.workspace.pk, events=[first, missed, later])

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]), backfill=False)
        await ws.receive_nothing(timeout=0.2)  # subscribed
        rows = {
            str(row.pk): row
            for row in await database_sync_to_async(list)(
                Event.objects.unscoped().filter(workspace=tenant.workspace)
            )
        }
        await events_publish(tenant.workspace.pk, publication_items([rows[first["id"]]]))
        delivered = await received_events(ws, within=0.3)
        # A publication lost on its way to this socket: its number is spent, nothing arrives.
        from orchestration.events import hub

        hub.hub()._numbering.next(hub.channel_name(tenant.workspace.pk))
        await events_publish(tenant.workspace.pk, publication_items([rows[later["id"]]]))
        closed = await ws.receive_output(timeout=2)
        await ws.disconnect()
        return delivered, closed

    delivered, closed = run(scenario)
    assert [e["id"] for e in delivered] == [first["id"]]
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_TRY_AGAIN_LATER
    assert closed.get("reason", MISSED_EVENTS_REASON) == MISSED_EVENTS_REASON


def test_a_subscriber_that_keeps_up_gets_every_publication_in_order(tenant):
    from orchestration.events.services import events_publish, publication_items
    from orchestration.models import Event

    events = [cancelling_event() for _ in range(30)]
    events_ingest(workspace_id=tenant.workspace.pk, events=events)

    async def scenario():
        ws = await subscribe(tenant, client_filter([CANCELLING]), backfill=False)
        await ws.receive_nothing(timeout=0.2)
        rows = await database_sync_to_async(list)(
            Event.objects.unscoped().filter(workspace=tenant.workspace).order_by("occurred", "id")
        )
        for row in rows:
            await events_publish(tenant.workspace.pk, publication_items([row]))
        got = await received_events(ws, within=0.5)
        await ws.disconnect()
        return [str(r.pk) for r in rows], got

    ids, got = run(scenario)
    assert [e["id"] for e in got] == ids
