"""Publishing from a request thread: handed to the server's event loop without waiting, in order;
without a server loop, in place."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from core import serverloop
from orchestration.events import hub, services

pytestmark = pytest.mark.django_db  # the package's session fixture ends database connections


@pytest.fixture
def server_loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    serverloop.remember(loop)
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    serverloop.remember(None)


def _items(n: int) -> list[dict[str, str]]:
    return [{"id": str(i), "event": "x", "occurred": "", "json": "{}"} for i in range(n)]


def _subscribe(loop, workspace_id):
    return asyncio.run_coroutine_threadsafe(hub.subscribe(workspace_id), loop).result(5)


def _receive_all(loop, subscription, count: int) -> tuple[list[str], int]:
    """The ids received until ``count`` arrived, and in how many publications."""

    async def drain():
        seen, publications = [], 0
        while len(seen) < count:
            publication = await asyncio.wait_for(subscription.get(), 5)
            publications += 1
            seen.extend(item["id"] for item in publication["items"])
        await hub.unsubscribe(subscription)
        return seen, publications

    return asyncio.run_coroutine_threadsafe(drain(), loop).result(30)


def test_a_request_thread_does_not_wait_and_subscribers_get_batches_in_order(server_loop, monkeypatch):
    """Thirty commits publish while each send takes 10 ms: the threads do not wait, the subscriber
    gets every event in commit order, and what piled up during a send went out together."""
    workspace_id = uuid.uuid4()
    subscription = _subscribe(server_loop, workspace_id)
    sent = []

    async def slow_publish(ws_id, items):
        await asyncio.sleep(0.01)
        await hub.publish(ws_id, items)

    monkeypatch.setattr(services, "events_publish", slow_publish)
    started = time.perf_counter()
    for batch in range(30):
        items = [{"id": f"{batch}-{i}", "event": "x", "occurred": "", "json": "{}"} for i in range(3)]
        sent.extend(item["id"] for item in items)
        services._publish_sync(workspace_id, items)
    assert time.perf_counter() - started < 0.25  # 30 x 10 ms were not waited for
    received, messages = _receive_all(server_loop, subscription, len(sent))
    assert received == sent
    assert messages < 30


def test_without_a_server_loop_it_publishes_in_place(monkeypatch):
    serverloop.remember(None)
    calls = []
    assert serverloop.running_server_loop() is None

    def record(ws_id, items):
        calls.append((ws_id, len(items)))

    monkeypatch.setattr(hub, "publish_sync", record)
    workspace_id = uuid.uuid4()
    services._publish_sync(workspace_id, _items(2))
    assert calls == [(workspace_id, 2)]
