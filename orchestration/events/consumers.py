"""The events websockets: ``…/events/in`` (clients emit events) and ``…/events/out`` (clients
subscribe to them, e.g. runners and workers waiting for ``prefect.flow-run.Cancelling``).

``/events/in`` buffers what arrives and writes it in batches (every ``FLUSH_INTERVAL`` seconds, or at
once when ``MAX_BATCH`` events are waiting, or when the socket closes), each batch in one short
transaction in a worker thread, so the event loop keeps answering pings. The client forgets every
event that a pong confirms (``prefect.events.clients``: it checkpoints with a ping), and the server
answers pings for frames it has read but not yet stored, so a received event is never abandoned: a
batch the store refuses (locked, disconnected, unavailable) is retried until it is stored, while the
socket reads nothing more once ``MAX_BATCH`` events wait behind it (at most two batches per socket),
even after the client has gone. Only an event that fails alone, for a reason of its own (a value its
column cannot hold), is dropped; the id de-duplication absorbs what a reconnecting client re-sends.

``/events/out`` takes one ``filter`` message, subscribes to the workspace in the live-event hub
(``events.hub``), sends the stored events matching the filter (the backfill, oldest first, bounded
like Prefect's to the last ``MAX_BACKFILL``), then every new matching event as it is published, in
order. When the hub cannot vouch that the socket got every publication (it fell behind, the
transport dropped, a publication was lost) the socket is closed with 1013 and the reason: the client
reconnects and backfills.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections import OrderedDict
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError, DataError, IntegrityError
from pydantic import ValidationError

from access.limits import Bucket, retry_after_for
from core.dbconn import leave_no_transaction
from core.parsers import loads
from orchestration.events import hub, selectors
from orchestration.events.auth import (
    AUTH_FAILED_REASON,
    EVENTS_IN_SCOPES,
    EVENTS_OUT_SCOPES,
    PREFECT_SUBPROTOCOL,
    UNAVAILABLE_REASON,
    SocketGrant,
    SocketUnavailable,
    authorize,
    bearer_token,
    client_ip,
    socket_request_context,
    wants_prefect_subprotocol,
)
from orchestration.events.filters import matches, name_matches, occurred_matches
from orchestration.events.schemas import EventFilter, EventIn
from orchestration.events.services import event_parse, events_publish, events_store, publication_items
from tenants.rls import database_workspace

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
MISSED_EVENTS_REASON = hub.MISSED

# A principal's key and access are checked again this often on a long-lived socket.
REAUTHORIZE_EVERY = 60.0


class _PrefectSocket(AsyncWebsocketConsumer):
    """Both handshakes (see ``orchestration.events.auth``), then ``on_authenticated`` /
    ``on_text``."""

    scopes: ClassVar[tuple[str, ...]] = ()
    # A socket that opened the ``prefect`` subprotocol has this long to send its auth message.
    AUTH_TIMEOUT: ClassVar[float] = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grant: SocketGrant | None = None
        self.phase = "connecting"
        self._authorized_at = 0.0
        self._closing = False
        self._auth_timer: asyncio.Task | None = None

    async def _expire_auth(self) -> None:
        await asyncio.sleep(self.AUTH_TIMEOUT)
        if self.phase == "auth":
            await self.close_once(CLOSE_POLICY_VIOLATION, "No 'auth' message in time")

    async def websocket_disconnect(self, message):
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        await super().websocket_disconnect(message)

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler, a thread hop per frame;
        # these handlers touch the database only through database_sync_to_async, which does it.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _authorize(self, token: str | None) -> SocketGrant | None:
        """The grant, or None (refused); raises ``SocketUnavailable`` when the database could not
        be asked."""
        kwargs = self.scope["url_route"]["kwargs"]
        grant = await authorize(
            token=token,
            account_ref=kwargs["account_ref"],
            workspace_ref=kwargs["workspace_ref"],
            scopes=self.scopes,
            ip=client_ip(self.scope),
            context=socket_request_context(self.scope),
        )
        if grant is not None:
            self.grant, self._authorized_at = grant, time.monotonic()
        return grant

    async def reauthorize_if_due(self) -> bool:
        """False (and the socket closing) when the key or the access is gone."""
        if self.grant is None or time.monotonic() - self._authorized_at < REAUTHORIZE_EVERY:
            return self.grant is not None
        try:
            granted = await self._authorize(self.grant.token)
        except SocketUnavailable:
            # Nothing was decided: the grant stands and is checked again on the next batch (what
            # the socket holds is stored once the database answers, never dropped for this).
            return True
        if granted is None:
            self.grant = None
            await self.close_once(CLOSE_POLICY_VIOLATION, AUTH_FAILED_REASON)
            return False
        return True

    async def close_once(self, code: int, reason: str | None = None) -> None:
        if not self._closing:
            self._closing = True
            await self.close(code=code, reason=reason)

    async def connect(self):
        if wants_prefect_subprotocol(self.scope):
            await self.accept(PREFECT_SUBPROTOCOL)
            self.phase = "auth"
            self._auth_timer = asyncio.create_task(self._expire_auth())
            return
        # Cloud mode: the key is in the upgrade request; refuse before accepting (HTTP 403).
        try:
            granted = await self._authorize(bearer_token(self.scope))
        except SocketUnavailable:
            # Not a refusal: accepted and closed "try again later", which the client retries
            # (a handshake answered with an HTTP status it does not retry).
            await self.accept()
            await self.close_once(CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON)
            return
        if granted is None:
            self._closing = True
            await self.close(code=CLOSE_POLICY_VIOLATION)
            return
        await self.accept()
        await self.on_authenticated()

    async def receive(self, text_data=None, bytes_data=None):
        if self._closing:
            return
        text = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if self.phase == "auth":
            await self._auth_message(text)
        elif self.phase != "connecting":
            await self.on_text(text)

    async def _auth_message(self, text: str) -> None:
        try:
            message = loads(text)  # refuses deep nesting and the unstorable, as a ValueError
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "auth":
            await self.close_once(CLOSE_POLICY_VIOLATION, "Expected 'auth' message")
            return
        token = message.get("token")
        token = token if isinstance(token, str) and token else bearer_token(self.scope)
        try:
            granted = await self._authorize(token)
        except SocketUnavailable:
            await self.close_once(CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON)
            return
        if granted is None:
            await self.close_once(CLOSE_POLICY_VIOLATION, AUTH_FAILED_REASON)
            return
        await self.send(text_data='{"type":"auth_success"}')
        await self.on_authenticated()

    async def on_authenticated(self) -> None:
        raise NotImplementedError

    async def on_text(self, text: str) -> None:
        raise NotImplementedError


def _store_and_render(workspace_id, events: list[EventIn]) -> list[dict[str, str]]:
    """One batch, in its own outermost transaction: the executor's thread keeps its connection
    between batches, and a connection left inside a transaction (by anything, however it failed)
    would make this batch a savepoint that never commits, its rows locked for the next writer."""
    leave_no_transaction()
    try:
        with database_workspace(workspace_id):
            return publication_items(events_store(workspace_id=workspace_id, events=events))
    finally:
        leave_no_transaction()


_store_in_thread = database_sync_to_async(_store_and_render, thread_sensitive=False)
_charge_in_thread = sync_to_async(retry_after_for, thread_sensitive=False)


class EventsInConsumer(_PrefectSocket):
    """``/events/in``: requires ``run_flows`` or ``manage_events``."""

    scopes = EVENTS_IN_SCOPES
    # This socket only receives; it needs no channel of its own on the channel layer.
    channel_layer_alias = "__events_in_has_no_channel__"

    FLUSH_INTERVAL = 0.05
    # A batch is written once this many events wait; while one is being written (or retried), the
    # socket reads on until the next batch is full, then waits for the store.
    MAX_BATCH = 500
    # Retries of a refused batch back off up to this many seconds apart.
    RETRY_DELAY_MAX = 2.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._buffer: list[EventIn] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None

    async def on_authenticated(self) -> None:
        self.phase = "events"

    async def on_text(self, text: str) -> None:
        event = event_parse(text)
        if event is None:
            return
        self._buffer.append(event)
        if len(self._buffer) >= self.MAX_BATCH:
            # Awaited here, so no further frame is read until the store has taken a batch.
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.FLUSH_INTERVAL)
        self._timer = None
        try:
            await self.flush()
        except Exception:
            logger.exception("Flushing events failed")
            await self.close_once(CLOSE_INTERNAL_ERROR)

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer or self.grant is None:
                return
            batch, self._buffer = self._buffer, []
            if not await self.reauthorize_if_due():
                logger.warning("Dropping %d events: the socket's key or access is gone", len(batch))
                return
            workspace_id = self.grant.workspace_id
            await self._within_rate_limit(len(batch))
            items = await self._store(workspace_id, batch)
            await events_publish(workspace_id, items)

    async def _within_rate_limit(self, amount: int) -> None:
        """Charge the batch to the account's logs + events bucket; over the limit, wait for the
        minute to turn before storing (the socket reads no more meanwhile once a batch is full),
        so what the client sent is slowed, never dropped."""
        grant = self.grant
        while True:
            wait = await _charge_in_thread(
                account_id=grant.account_id,
                plan=grant.plan,
                plan_limits=grant.plan_limits,
                bucket=Bucket.LOGS_EVENTS,
                amount=amount,
            )
            if wait is None:
                return
            await asyncio.sleep(min(wait, 5))

    async def _store(self, workspace_id, batch: list[EventIn]) -> list[dict[str, str]]:
        """Store ``batch``, retrying for as long as the store refuses it; only an event that fails
        alone, for a reason of its own, is dropped."""
        try:
            return await self._store_retrying(workspace_id, batch)
        except _RefusedData:
            logger.warning(
                "Storing a batch of %d events failed; storing one by one", len(batch), exc_info=True
            )
        items: list[dict[str, str]] = []
        for event in batch:
            try:
                items.extend(await self._store_retrying(workspace_id, [event]))
            except _RefusedData:
                logger.exception("Dropping the event %s, which cannot be stored", event.id)
        return items

    async def _store_retrying(self, workspace_id, batch: list[EventIn]) -> list[dict[str, str]]:
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                return await _store_in_thread(workspace_id, batch)
            except (DataError, IntegrityError) as error:
                raise _RefusedData from error
            except DatabaseError:
                # Locked (SQLite under load), a dropped connection, a database going away: the events
                # were received (and perhaps confirmed to the client), so try again, whatever it takes.
                if attempt == 1 or attempt % 20 == 0:
                    logger.warning(
                        "Storing %d events failed (attempt %d); retrying", len(batch), attempt, exc_info=True
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.RETRY_DELAY_MAX)
            except Exception as error:
                # Not the database: something about these events; find which by storing one by one.
                raise _RefusedData from error

    async def disconnect(self, code):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            await self.flush()
        except Exception:
            logger.exception("Flushing events on disconnect failed")


class _RefusedData(Exception):
    """The store works but refused what it was given (a value its column cannot hold)."""


class _SentIds:
    """The ids already sent on a socket (bounded; the client de-duplicates as well)."""

    def __init__(self, size: int = 10_000):
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, event_id: str) -> bool:
        """False when ``event_id`` was sent already."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def _parse_occurred(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _backfill_page(workspace_id, flt: EventFilter, after, limit: int):
    with database_workspace(workspace_id):
        rows = selectors.events_backfill(workspace_id=workspace_id, flt=flt, after=after, limit=limit)
    cursor = (rows[-1].occurred, rows[-1].id) if rows else after
    return publication_items(rows), cursor, len(rows)


class EventsOutConsumer(_PrefectSocket):
    """``/events/out``: requires ``see_events``."""

    scopes = EVENTS_OUT_SCOPES
    # Live publications come through the hub, not the channel layer.
    channel_layer_alias = "__events_out_reads_the_hub__"

    MAX_BACKFILL = dt.timedelta(minutes=15)
    BACKFILL_PAGE_SIZE = 250

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filter: EventFilter | None = None
        self._full_match = False
        self._sent = _SentIds()
        self._tasks: list[asyncio.Task] = []
        self._subscription: hub.Subscription | None = None

    async def on_authenticated(self) -> None:
        self.phase = "filter"

    async def on_text(self, text: str) -> None:
        if self.phase != "filter":
            return  # nothing else is expected from a subscriber
        try:
            message = loads(text)  # refuses deep nesting and the unstorable, as a ValueError
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "filter":
            await self.close_once(CLOSE_PROTOCOL_ERROR, "Expected 'filter' message")
            return
        try:
            flt = EventFilter.model_validate(message.get("filter") or {})
        except ValidationError as error:
            await self.close_once(CLOSE_PROTOCOL_ERROR, f"Invalid filter: {error.error_count()} error(s)")
            return
        flt.occurred.clamp(self.MAX_BACKFILL)
        flt.order = "ASC"
        self.filter = flt
        self._full_match = bool(
            flt.id.id or flt.resource or flt.related_filters or flt.any_resource_filters or flt.text
        )
        self.phase = "streaming"

        # Subscribe first, then backfill, so nothing falls between the two (duplicates are dropped).
        try:
            self._subscription = await hub.subscribe(self.grant.workspace_id)
        except hub.Lost as lost:
            await self.close_once(CLOSE_TRY_AGAIN_LATER, str(lost))
            return
        if message.get("backfill", True):
            await self._backfill()
        self._tasks.append(asyncio.create_task(self._stream(self._subscription)))
        self._tasks.append(asyncio.create_task(self._reauthorize_periodically()))

    async def _stream(self, subscription: hub.Subscription) -> None:
        """Send what the hub delivers, in order; when it cannot vouch for completeness, say so."""
        try:
            while not self._closing:
                publication = await subscription.get()
                for item in publication["items"]:
                    if self._wanted(item["event"], item["occurred"], item["json"]):
                        await self._deliver(item["id"], item["json"])
        except hub.Lost as lost:
            await self.close_once(CLOSE_TRY_AGAIN_LATER, str(lost))
        except asyncio.CancelledError:
            pass

    async def _backfill(self) -> None:
        after = None
        while not self._closing:
            items, after, count = await database_sync_to_async(_backfill_page)(
                self.grant.workspace_id, self.filter, after, self.BACKFILL_PAGE_SIZE
            )
            for item in items:
                await self._deliver(item["id"], item["json"])
            if count < self.BACKFILL_PAGE_SIZE:
                return

    async def _deliver(self, event_id: str, event_json: str) -> None:
        if self._closing or not self._sent.add(event_id):
            return
        try:
            await self.send(text_data='{"type":"event","event":' + event_json + "}")
        except (OSError, RuntimeError):
            # The client is gone (the server reports it as an error on send); the disconnect
            # message that follows ends the consumer.
            self._closing = True

    def _wanted(self, name: str, occurred: str, event_json: str) -> bool:
        flt = self.filter
        if flt is None or not name_matches(flt, name):
            return False
        occurred_at = _parse_occurred(occurred)
        if not occurred_matches(flt, occurred_at):
            return False
        if not self._full_match:
            return True
        event: dict[str, Any] = json.loads(event_json)
        event["occurred"] = occurred_at
        return matches(flt, event)

    async def _reauthorize_periodically(self) -> None:
        try:
            while not self._closing:
                await asyncio.sleep(REAUTHORIZE_EVERY)
                if not await self.reauthorize_if_due():
                    return
        except asyncio.CancelledError:
            pass

    async def disconnect(self, code):
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._subscription is not None:
            await hub.unsubscribe(self._subscription)
            self._subscription = None
