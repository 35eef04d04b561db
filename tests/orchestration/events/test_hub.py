"""The live-event hub over Redis: one pub/sub connection per process whatever the number of
subscribers, every publication delivered in order under a burst, and a subscriber told (never left
silent) when it fell behind or the transport dropped."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from django.test import override_settings

from orchestration.events import hub
from orchestration.events.consumers import CLOSE_TRY_AGAIN_LATER
from orchestration.events.services import events_publish
from tests.orchestration.events.conftest import events_path, now_iso, open_prefect, run

pytestmark = pytest.mark.django_db(transaction=True)

CANCELLING = "prefect.flow-run.Cancelling"


@pytest.fixture
def redis_url(settings):
    """The suite's Redis (``REDIS_URL``), or the local one on its default port."""
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis to run the hub against")
    with override_settings(REDIS_URL=url):
        yield url


def _hub_connections(url: str) -> int:
    """This process's hub connections (other processes may share the Redis server)."""
    return sum(1 for client in redis.Redis.from_url(url).client_list() if client["name"] == hub.client_name())


def _items(first: int, count: int) -> list[dict[str, str]]:
    return [
        {
            "id": str(uuid.UUID(int=first + n + 1)),
            "event": CANCELLING,
            "occurred": now_iso(),
            "json": f'{{"n":{first + n}}}',
        }
        for n in range(count)
    ]


async def _subscribe(tenant):
    ws = await open_prefect(events_path(tenant, "out"), tenant.service_key)
    await ws.send_json_to(
        {
            "type": "filter",
            "filter": {
                "occurred": {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
                "event": {"name": [CANCELLING]},
            },
            "backfill": False,
        }
    )
    return ws


async def _settled(ws) -> None:
    assert await ws.receive_nothing(timeout=0.2)


def test_a_burst_reaches_a_subscriber_whole_and_in_order(tenant, redis_url):
    """12,000 events published as fast as one process can: the subscriber gets all of them, in
    order (the channel layer used to drop two thirds of such a burst without a word)."""

    async def scenario():
        ws = await _subscribe(tenant)
        await _settled(ws)
        for start in range(0, 12_000, 500):
            await events_publish(tenant.workspace.pk, _items(start, 500))
        got = []
        while len(got) < 12_000:
            message = await ws.receive_json_from(timeout=10)
            got.append(message["event"]["n"])
        await ws.disconnect()
        return got

    assert run(scenario) == list(range(12_000))


def test_two_hundred_subscribers_share_one_connection_and_each_gets_every_event(tenant, redis_url):
    before = _hub_connections(redis_url)

    async def scenario():
        sockets = await asyncio.gather(*(_subscribe(tenant) for _ in range(200)))
        await asyncio.gather(*(_settled(ws) for ws in sockets))
        during = _hub_connections(redis_url)
        await events_publish(tenant.workspace.pk, _items(0, 3))
        received = []
        for ws in sockets:
            received.append([(await ws.receive_json_from(timeout=5))["event"]["n"] for _ in range(3)])
        await asyncio.gather(*(ws.disconnect() for ws in sockets))
        return during, received, hub.hub()._subscribers

    during, received, left = run(scenario)
    # One pub/sub connection and one publisher connection for the whole process.
    assert during - before <= 2
    assert received == [[0, 1, 2]] * 200
    assert not left  # every socket that closed left the hub


def test_a_subscriber_that_stops_reading_is_told_it_fell_behind(redis_url, monkeypatch):
    monkeypatch.setattr(hub, "SUBSCRIBER_CAPACITY", 3)
    workspace_id = uuid.uuid4()

    async def scenario():
        subscription = await hub.subscribe(workspace_id)
        for start in range(5):
            await hub.publish(workspace_id, _items(start, 1))
        got = []
        try:
            while True:
                got.append((await asyncio.wait_for(subscription.get(), 5))["items"][0]["json"])
        except hub.Lost as lost:
            reason = str(lost)
        await hub.unsubscribe(subscription)
        return got, reason

    got, reason = run(scenario)
    assert reason == hub.FELL_BEHIND
    assert got == []  # nothing after the gap pretends to be complete


def test_a_dropped_transport_closes_every_socket_with_a_reason_and_the_next_one_works(tenant, redis_url):
    async def scenario():
        first, second = await _subscribe(tenant), await _subscribe(tenant)
        await _settled(first)
        await _settled(second)
        redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
        closed = [await ws.receive_output(timeout=5) for ws in (first, second)]
        again = await _subscribe(tenant)
        await _settled(again)
        await events_publish(tenant.workspace.pk, _items(0, 1))
        delivered = await again.receive_json_from(timeout=5)
        await again.disconnect()
        return closed, delivered

    closed, delivered = run(scenario)
    for message in closed:
        assert message["type"] == "websocket.close"
        assert message["code"] == CLOSE_TRY_AGAIN_LATER
        assert message["reason"] == hub.TRANSPORT_LOST
    assert delivered["event"]["n"] == 0


def test_without_redis_a_hundred_subscribers_poll_storage_once(tenant, settings):
    """The embedded default: one storage poll per watched workspace and second, not one per socket."""
    settings.REDIS_URL = ""

    async def scenario():
        sockets = await asyncio.gather(*(_subscribe(tenant) for _ in range(100)))
        await asyncio.gather(*(_settled(ws) for ws in sockets))
        pollers = [key for key in hub._local._pollers if key[1] == hub.channel_name(tenant.workspace.pk)]
        await asyncio.gather(*(ws.disconnect() for ws in sockets))
        return pollers, [
            key for key in hub._local._pollers if key[1] == hub.channel_name(tenant.workspace.pk)
        ]

    pollers, after = run(scenario)
    assert len(pollers) == 1
    assert after == []
