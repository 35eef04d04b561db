"""Storing and publishing events (owned by the events work; this is its public surface).

* ``events_ingest`` stores a batch of Prefect events in a workspace and publishes the new ones to
  the workspace's ``/events/out`` subscribers after the transaction commits;
* ``event_record_on_commit`` is how the orchestration engine emits an event (``prefect.flow-run.*``)
  alongside a state change.

Storage rules: an event id is stored once (the client re-sends unconfirmed events after a
reconnect); an id already stored in *another* workspace is skipped, never touched. Task-run events
from the client also build task runs (``recorder``), in the same transaction.

Publishing goes through the channel layer (Redis when ``REDIS_URL`` is set, in-memory otherwise), one
group per workspace. A published item carries the event's JSON text plus the few fields a
subscriber filters on first, so fanning out to many subscribers copies no event structures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction
from django.utils import timezone
from pydantic import ValidationError

from config import serverloop
from orchestration.api.wire import event_to_wire
from orchestration.events.recorder import is_task_run_event, record_task_run_events
from orchestration.events.schemas import EventIn
from orchestration.models import Event

logger = logging.getLogger(__name__)

# Ids per query stay far below SQLite's parameter limit.
STORE_CHUNK = 500
# Events per channel-layer message.
PUBLISH_CHUNK = 100


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def events_group(workspace_id: uuid.UUID | str) -> str:
    """The channel-layer group of a workspace's event stream."""
    return f"events.{_uuid(workspace_id).hex}"


# --- Parsing ----------------------------------------------------------------------------------------


def event_parse(raw: Any) -> EventIn | None:
    """A client's event (a dict, or its JSON text), validated; None (logged) when it is not one."""
    try:
        if isinstance(raw, str | bytes | bytearray):
            return EventIn.model_validate_json(raw)
        if isinstance(raw, EventIn):
            return raw
        return EventIn.model_validate(raw)
    except ValidationError as error:
        logger.warning(
            "Dropping an invalid event: %s",
            error.errors(include_url=False, include_context=False, include_input=False),
        )
        return None


# --- Storing ----------------------------------------------------------------------------------------


def events_store(*, workspace_id: uuid.UUID | str, events: Iterable[EventIn]) -> list[Event]:
    """Store ``events`` in one transaction and apply the task-run ones; returns the rows that are
    new (in arrival order). Events whose id is already stored, in this workspace or another, are
    skipped. Publishing is the caller's business (``events_publish*``)."""
    workspace_id = _uuid(workspace_id)
    unique: dict[uuid.UUID, EventIn] = {}
    for event in events:
        unique.setdefault(event.id, event)
    if not unique:
        return []
    received = timezone.now()
    stored: list[Event] = []
    with transaction.atomic():
        all_events = Event.objects.unscoped()
        batch = list(unique.values())
        for start in range(0, len(batch), STORE_CHUNK):
            chunk = batch[start : start + STORE_CHUNK]
            taken = set(all_events.filter(id__in=[e.id for e in chunk]).values_list("id", flat=True))
            fresh = [e for e in chunk if e.id not in taken]
            if not fresh:
                continue
            rows = [
                Event(
                    id=e.id,
                    workspace_id=workspace_id,
                    occurred=e.occurred,
                    event=e.event,
                    resource_id=e.resource_id,
                    resource=e.resource,
                    related=e.related,
                    payload=e.payload,
                    follows=e.follows,
                    received=received,
                )
                for e in fresh
            ]
            all_events.bulk_create(rows, ignore_conflicts=True)
            # Which rows are ours: a concurrent writer may have inserted one of these ids meanwhile.
            mine = set(
                all_events.filter(
                    id__in=[row.id for row in rows], workspace_id=workspace_id, received=received
                ).values_list("id", flat=True)
            )
            if len(mine) < len(rows):
                logger.info(
                    "Workspace %s: %d event id(s) were already stored elsewhere; skipped",
                    workspace_id,
                    len(rows) - len(mine),
                )
            stored.extend(row for row in rows if row.id in mine)
            record_task_run_events(workspace_id, [e for e in fresh if e.id in mine and is_task_run_event(e)])
    return stored


# --- Publishing -------------------------------------------------------------------------------------


def publication_items(rows: Iterable[Event]) -> list[dict[str, str]]:
    """What a channel-layer message carries per event: id, name and occurred (to filter on before
    parsing) and the event's wire JSON."""
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


async def events_publish(workspace_id: uuid.UUID | str, items: list[dict[str, str]]) -> None:
    """Send ``items`` to the workspace's subscribers (never raises: live delivery is best effort,
    storage is the truth and subscribers catch up from it)."""
    if not items:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    group = events_group(workspace_id)
    for start in range(0, len(items), PUBLISH_CHUNK):
        try:
            await layer.group_send(
                group, {"type": "events.published", "items": items[start : start + PUBLISH_CHUNK]}
            )
        except Exception:
            logger.exception("Could not publish events to %s", group)
            return


_publish_order: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def _publish_in_order(workspace_id: uuid.UUID, items: list[dict[str, str]]) -> None:
    # Tasks scheduled one after the other take the (FIFO) lock in the same order: subscribers get
    # the events in the order the requests committed them.
    loop = asyncio.get_running_loop()
    lock = _publish_order.get(loop)
    if lock is None:
        lock = _publish_order[loop] = asyncio.Lock()
    async with lock:
        await events_publish(workspace_id, items)


def _publish_sync(workspace_id: uuid.UUID, items: list[dict[str, str]]) -> None:
    """Hand the publication to the server's event loop without waiting for it (the request that
    committed the events answers at once); outside a server, publish in place."""
    loop = serverloop.running_server_loop()
    if loop is not None:
        try:
            asyncio.run_coroutine_threadsafe(_publish_in_order(workspace_id, items), loop)
            return
        except RuntimeError:  # the loop closed in between
            pass
    try:
        async_to_sync(events_publish)(workspace_id, items)
    except Exception:
        logger.exception("Could not publish events of workspace %s", workspace_id)


# --- Public surface ---------------------------------------------------------------------------------


def events_ingest(*, workspace_id: uuid.UUID, events: list[dict[str, Any]]) -> int:
    """Store a batch of events (and apply task-run events). Returns how many were new. Invalid
    events are dropped (logged). The new ones are published once the transaction commits (at once
    when there is no transaction)."""
    workspace_id = _uuid(workspace_id)
    parsed = [event for raw in events if (event := event_parse(raw)) is not None]
    stored = events_store(workspace_id=workspace_id, events=parsed)
    if stored:
        items = publication_items(stored)
        transaction.on_commit(lambda: _publish_sync(workspace_id, items), robust=True)
    return len(stored)


def event_record_on_commit(*, workspace_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Record ``event`` (a Prefect event dict: id, occurred, event, resource, related, payload) in
    the workspace and publish it to ``/events/out`` subscribers once the current transaction
    commits. Idempotent on the event id.

    The row is written in a savepoint of the caller's transaction, so it commits (or rolls back)
    with the state change it reports; a failure to store it is logged and never breaks the caller.
    """
    try:
        events_ingest(workspace_id=workspace_id, events=[event])
    except DatabaseError:
        logger.exception(
            "Could not record the event %s", event.get("event") if isinstance(event, dict) else event
        )
