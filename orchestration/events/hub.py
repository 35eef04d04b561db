"""The live-event hub: how a publication reaches the ``/events/out`` sockets of every process.

A socket subscribes to its workspace here (``subscribe``) and reads publications from its own
bounded queue; ``publish`` sends one. Two transports, chosen by ``REDIS_URL``:

* **Redis** (``RedisHub``, one per event loop): a publication is one ``PUBLISH`` on the workspace's
  Redis channel. Each process holds ONE pub/sub connection, subscribed to the channels of the
  workspaces its sockets watch, and fans what arrives out to them in memory. A thousand sockets cost
  one Redis connection and no per-socket Redis state, so nothing leaks when a socket dies and a
  burst of subscribers cannot exhaust a pool.
* **In memory** (``LocalHub``, the embedded default, one per process): publications fan out in the
  process; events that another process stored (a Celery worker) are read from storage by one poller
  per watched workspace, once a second, whatever the number of sockets.

Delivery is complete or says it is not: a subscriber whose queue is full (it stopped reading), whose
transport dropped (the pub/sub connection closed, so publications may have been lost), or that sees
a publisher's numbers jump (a publish failed) is ``lost``: its next read raises ``Lost`` with the
reason, and the socket closes with it; the client reconnects and backfills from storage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from orchestration.events import selectors
from orchestration.events.schemas import EventFilter, event_to_wire
from orchestration.models import Event

logger = logging.getLogger(__name__)

#: Publications a subscriber may have waiting before it is told it fell behind.
SUBSCRIBER_CAPACITY = 1000
#: The local hub's storage poll: how often, how far back (a transaction commits a little after
#: stamping ``received``), and how many events per query.
POLL_INTERVAL = 1.0
POLL_LOOKBACK = dt.timedelta(seconds=5)
POLL_LIMIT = 500

FELL_BEHIND = "Fell behind the live events; reconnect to catch up"
TRANSPORT_LOST = "The live-event stream was interrupted; reconnect to catch up"
MISSED = "Missed live events; reconnect to catch up"


class Lost(Exception):
    """A subscriber can no longer be sure it has every publication; ``str()`` says why."""


#: The topic of the live events (``/events/out``).
EVENTS = "events"
#: Wake-ups for task workers: a background task run was queued in the workspace.
TASK_RUNS = "task-runs"


def _timeout() -> float:
    """How long a publish (or a connection attempt) may wait on Redis (``REDIS_TIMEOUT_SECONDS``)."""
    return float(getattr(settings, "REDIS_TIMEOUT_SECONDS", 1.0))


def client_name() -> str:
    """How this process's hub connections name themselves to Redis (``CLIENT LIST``)."""
    return f"live-hub-{os.getpid()}"


def channel_name(workspace_id: uuid.UUID | str, topic: str = EVENTS) -> str:
    """A workspace's channel of a topic (the Redis channel, and the hubs' key)."""
    return f"{topic}:{uuid.UUID(str(workspace_id)).hex}"


def publication_items(rows: Iterable[Event]) -> list[dict[str, str]]:
    """What a publication carries per event: id, name and occurred (to filter on before parsing) and
    the event's wire JSON."""
    items = []
    for row in rows:
        wire = event_to_wire(row)
        items.append(
            {
                "id": wire["id"],
                "event": wire["event"],
                "occurred": wire["occurred"],
                "json": json.dumps(wire, separators=(",", ":"), default=str),
            }
        )
    return items


@dataclass(eq=False)
class Subscription:
    """One socket's view of its workspace's publications (``get`` them in order)."""

    workspace_key: str
    loop: asyncio.AbstractEventLoop
    capacity: int = SUBSCRIBER_CAPACITY
    _queue: collections.deque = field(default_factory=collections.deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _sequences: dict[str, int] = field(default_factory=dict)
    lost: str | None = None
    closed: bool = False

    def offer(self, publication: dict[str, Any]) -> None:
        """Called on the subscriber's loop."""
        if self.closed or self.lost:
            return
        publisher, sequence = publication.get("publisher"), publication.get("sequence")
        if publisher is not None and sequence is not None:
            last = self._sequences.get(publisher)
            self._sequences[publisher] = sequence
            if last is not None and sequence != last + 1:
                self.lose(MISSED)
                return
        if len(self._queue) >= self.capacity:
            self.lose(FELL_BEHIND)
            return
        self._queue.append(publication)
        self._wakeup.set()

    def lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            self._wakeup.set()

    def clear(self) -> None:
        """Drop what is waiting (a wake-up subscriber acts once for many)."""
        self._queue.clear()

    async def get(self) -> dict[str, Any]:
        while not self._queue:
            if self.lost:
                raise Lost(self.lost)
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.lost:
            raise Lost(self.lost)
        return self._queue.popleft()


# --- Publishing -------------------------------------------------------------------------------------


class _Numbering:
    """Publications numbered per publisher and workspace, so a subscriber notices a gap."""

    def __init__(self) -> None:
        self.name = uuid.uuid4().hex
        self._numbers: dict[str, int] = collections.defaultdict(int)

    def next(self, workspace_key: str) -> int:
        self._numbers[workspace_key] += 1
        return self._numbers[workspace_key]


def _envelope(numbering: _Numbering, workspace_key: str, items: list[dict[str, str]]) -> dict[str, Any]:
    return {"publisher": numbering.name, "sequence": numbering.next(workspace_key), "items": items}


# --- In memory --------------------------------------------------------------------------------------


def _received_since(workspace_id: uuid.UUID, received_after: dt.datetime):
    close_old_connections()
    flt = EventFilter.model_validate({"occurred": {"since": "2000-01-01T00:00:00Z"}})
    rows = selectors.events_received_since(
        workspace_id=workspace_id, flt=flt, received_after=received_after, limit=POLL_LIMIT
    )
    return publication_items(rows), max((row.received for row in rows), default=None)


class LocalHub:
    """One process: fan out in memory, and poll storage once per watched workspace and loop for what
    other processes stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._pollers: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task] = {}
        self._numbering = _Numbering()
        self._publish_lock = threading.Lock()

    async def subscribe(self, workspace_id: uuid.UUID | str, topic: str = EVENTS) -> Subscription:
        key = channel_name(workspace_id, topic)
        loop = asyncio.get_running_loop()
        subscription = Subscription(workspace_key=key, loop=loop, capacity=SUBSCRIBER_CAPACITY)
        with self._lock:
            self._subscribers[key].add(subscription)
            if topic == EVENTS and (loop, key) not in self._pollers:
                started = timezone.now() - POLL_LOOKBACK
                self._pollers[(loop, key)] = loop.create_task(self._poll(loop, key, started))
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        key, loop = subscription.workspace_key, subscription.loop
        with self._lock:
            watchers = self._subscribers.get(key, set())
            watchers.discard(subscription)
            if not watchers:
                self._subscribers.pop(key, None)
            if not any(s.loop is loop for s in watchers):
                poller = self._pollers.pop((loop, key), None)
                if poller is not None:
                    poller.cancel()

    def _deliver(self, key: str, publication: dict[str, Any]) -> None:
        with self._lock:
            watchers = list(self._subscribers.get(key, ()))
        for subscription in watchers:
            try:
                if _on_loop(subscription.loop):
                    subscription.offer(publication)
                else:
                    subscription.loop.call_soon_threadsafe(subscription.offer, publication)
            except RuntimeError:  # the subscriber's loop closed
                pass

    async def publish(
        self, workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS
    ) -> None:
        self.publish_sync(workspace_id, items, topic)

    def publish_sync(
        self, workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS
    ) -> None:
        key = channel_name(workspace_id, topic)
        with self._publish_lock:
            self._deliver(key, _envelope(self._numbering, key, items))

    async def _poll(self, loop: asyncio.AbstractEventLoop, key: str, received_after: dt.datetime) -> None:
        workspace_id = uuid.UUID(key.partition(":")[2])
        fetch = sync_to_async(_received_since, thread_sensitive=False)
        try:
            while True:
                await asyncio.sleep(POLL_INTERVAL)
                try:
                    items, newest = await fetch(workspace_id, received_after)
                except DatabaseError:
                    logger.warning("Polling the live events of %s failed", key, exc_info=True)
                    continue
                if items:
                    # No numbering: storage is read again and again; subscribers drop what they sent.
                    publication = {"items": items}
                    with self._lock:
                        watchers = [s for s in self._subscribers.get(key, ()) if s.loop is loop]
                    for subscription in watchers:
                        subscription.offer(publication)
                if newest is not None:
                    margin = dt.timedelta(0) if len(items) >= POLL_LIMIT else POLL_LOOKBACK
                    received_after = max(received_after, newest - margin)
        except asyncio.CancelledError:
            pass


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# --- Redis ------------------------------------------------------------------------------------------


class RedisHub:
    """One event loop's subscriptions over one Redis pub/sub connection, and its publisher."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._subscribers: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._confirmations: dict[str, collections.deque[asyncio.Future]] = collections.defaultdict(
            collections.deque
        )
        self._ready: dict[str, asyncio.Future] = {}
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._numbering = _Numbering()
        self._publish_lock = asyncio.Lock()
        self._publisher: aioredis.Redis | None = None

    async def subscribe(self, workspace_id: uuid.UUID | str, topic: str = EVENTS) -> Subscription:
        key = channel_name(workspace_id, topic)
        subscription = Subscription(
            workspace_key=key, loop=asyncio.get_running_loop(), capacity=SUBSCRIBER_CAPACITY
        )
        async with self._lock:
            watchers = self._subscribers.get(key)
            if watchers:
                watchers.add(subscription)
                ready = self._ready[key]
            else:
                self._subscribers[key].add(subscription)
                try:
                    ready = self._ready[key] = await self._send_subscribe(key)
                except (redis.RedisError, OSError) as error:
                    self._subscribers.pop(key, None)
                    await self._disconnect_if_idle()
                    raise Lost(TRANSPORT_LOST) from error
        # Once Redis confirms the channel, every later publication reaches the subscription.
        try:
            # Bounded by the Redis timeout, but never below 10 s: a burst of subscribers (two hundred
            # sockets opening at once) queues its confirmations behind each other on one connection.
            await asyncio.wait_for(asyncio.shield(ready), timeout=max(10.0, 5 * _timeout()))
        except (TimeoutError, Lost):
            await self.unsubscribe(subscription)
            raise Lost(TRANSPORT_LOST) from None
        return subscription

    async def _send_subscribe(self, key: str) -> asyncio.Future:
        if self._pubsub is None:
            # No read timeout: the connection waits for publications as long as there are none
            # (a dead peer is found by keepalive). Connecting is bounded: a subscriber is refused
            # as retryable at once rather than held while Redis does not answer.
            self._client = aioredis.Redis.from_url(
                self._url, socket_keepalive=True, socket_connect_timeout=_timeout(), client_name=client_name()
            )
            self._pubsub = self._client.pubsub()
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[key].append(confirmed)
        await self._pubsub.subscribe(key)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(self._pubsub))
        return confirmed

    async def _disconnect_if_idle(self) -> None:
        if not self._subscribers:
            await self._disconnect()

    async def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        key = subscription.workspace_key
        async with self._lock:
            watchers = self._subscribers.get(key)
            if watchers is None:
                return
            watchers.discard(subscription)
            if watchers:
                return
            del self._subscribers[key]
            self._ready.pop(key, None)
            if not self._subscribers:
                await self._disconnect()
            elif self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(key)
                except (redis.RedisError, OSError):
                    await self._transport_lost()

    async def _read(self, pubsub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind, channel = message["type"], message["channel"].decode()
                if kind == "subscribe":
                    waiting = self._confirmations.get(channel)
                    if waiting:
                        future = waiting.popleft()
                        if not future.done():
                            future.set_result(None)
                elif kind == "message":
                    publication = json.loads(message["data"])
                    for subscription in list(self._subscribers.get(channel, ())):
                        subscription.offer(publication)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("The live-event subscription connection dropped", exc_info=True)
            self._reader = None  # this task ends here; do not cancel it from within
            async with self._lock:
                await self._transport_lost()

    async def _transport_lost(self) -> None:
        """Every subscriber may have missed publications: tell them all and start afresh."""
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.lose(TRANSPORT_LOST)
        self._subscribers.clear()
        self._ready.clear()
        await self._disconnect()

    async def _disconnect(self) -> None:
        reader, pubsub, client = self._reader, self._pubsub, self._client
        self._reader = self._pubsub = self._client = None
        for waiting in self._confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(Lost(TRANSPORT_LOST))
                    future.exception()  # retrieved: whoever waits on it is told, no one else
        self._confirmations.clear()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        for closing in (pubsub, client):
            if closing is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    await closing.aclose()

    async def publish(
        self, workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS
    ) -> None:
        key = channel_name(workspace_id, topic)
        async with self._publish_lock:  # one at a time, so a publisher's numbers arrive in order
            envelope = _envelope(self._numbering, key, items)
            if self._publisher is None:
                self._publisher = aioredis.Redis.from_url(
                    self._url,
                    socket_timeout=_timeout(),
                    socket_connect_timeout=_timeout(),
                    client_name=client_name(),
                )
            await self._publisher.publish(key, json.dumps(envelope, separators=(",", ":")))


class _SyncRedisPublisher:
    """Publishing from code with no server loop (a Celery worker, a management command)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=_timeout(), socket_connect_timeout=_timeout(), client_name=client_name()
        )
        self._numbering = _Numbering()
        self._lock = threading.Lock()

    def publish_sync(
        self, workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS
    ) -> None:
        key = channel_name(workspace_id, topic)
        with self._lock:
            envelope = _envelope(self._numbering, key, items)
            self._client.publish(key, json.dumps(envelope, separators=(",", ":")))


# --- Access -----------------------------------------------------------------------------------------

_local = LocalHub()
_redis_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisHub] = weakref.WeakKeyDictionary()
_sync_publisher: _SyncRedisPublisher | None = None
_sync_publisher_lock = threading.Lock()


def _redis_url() -> str:
    return getattr(settings, "REDIS_URL", "") or ""


def hub() -> LocalHub | RedisHub:
    """The running loop's hub."""
    url = _redis_url()
    if not url:
        return _local
    loop = asyncio.get_running_loop()
    found = _redis_hubs.get(loop)
    if found is None:
        found = _redis_hubs[loop] = RedisHub(url)
    return found


async def subscribe(workspace_id: uuid.UUID | str, topic: str = EVENTS) -> Subscription:
    """Start receiving the workspace's publications of ``topic`` (raises ``Lost`` when the transport
    is down)."""
    return await hub().subscribe(workspace_id, topic)


async def unsubscribe(subscription: Subscription) -> None:
    current = hub()
    await current.unsubscribe(subscription)


async def publish(workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS) -> None:
    """Publish from a running loop (raises the transport's error; the caller decides)."""
    await hub().publish(workspace_id, items, topic)


def wake(workspace_id: uuid.UUID | str, topic: str) -> None:
    """Tell the workspace's subscribers of ``topic`` to look again (never raises: a subscriber that
    misses a wake-up looks again on its own clock)."""
    try:
        publish_sync(workspace_id, [], topic)
    except Exception:
        logger.warning("Could not wake the %s subscribers of %s", topic, workspace_id, exc_info=True)


def publish_sync(workspace_id: uuid.UUID | str, items: list[dict[str, str]], topic: str = EVENTS) -> None:
    """Publish from code without a running loop (raises the transport's error)."""
    global _sync_publisher
    url = _redis_url()
    if not url:
        _local.publish_sync(workspace_id, items, topic)
        return
    with _sync_publisher_lock:
        if _sync_publisher is None:
            _sync_publisher = _SyncRedisPublisher(url)
    _sync_publisher.publish_sync(workspace_id, items, topic)
