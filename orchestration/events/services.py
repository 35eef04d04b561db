"""Storing and publishing events (owned by the events work; this is its public surface).

* ``events_ingest`` stores a batch of Prefect events in a workspace and publishes the new ones to
  the workspace's ``/events/out`` subscribers after the transaction commits;
* ``event_record_on_commit`` is how the orchestration engine emits an event (``prefect.flow-run.*``)
  alongside a state change;
* ``events_stored_listen`` registers a listener called with every batch of new rows once their
  transaction commits, however they were stored (the automations' trigger engine).

Storage rules: an event id is stored once (the client re-sends unconfirmed events after a
reconnect); an id already stored in *another* workspace is skipped, never touched. Each new event's
resources (its own and the related ones) are written to ``EventResource`` in the same transaction,
which the event feed of one resource reads. Task-run events from the client also build task runs
(``recorder``), in the same transaction.

Publishing goes through the live-event hub (``events.hub``: Redis pub/sub when ``REDIS_URL`` is set,
in memory otherwise), one channel per workspace. A published item carries the event's JSON text plus
the few fields a subscriber filters on first, so fanning out to many subscribers copies no event
structures.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone
from pydantic import ValidationError

from core import metrics, serverloop
from core.parsers import BadJson, loads, suspect
from orchestration.events import hub
from orchestration.events.hub import publication_items
from orchestration.events.recorder import is_task_run_event, record_task_run_events
from orchestration.events.schemas import EventIn
from orchestration.models import Event, EventResource
from orchestration.persistence.write_batch import insert_or_defer

logger = logging.getLogger(__name__)

# Ids per query stay far below SQLite's parameter limit.
STORE_CHUNK = 500
# Events per publication.
PUBLISH_CHUNK = 100


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# --- Parsing ----------------------------------------------------------------------------------------


def event_parse(raw: Any) -> EventIn | None:
    """A client's event (a dict, or its JSON text), validated; None (logged) when it is not one."""
    try:
        if isinstance(raw, str | bytes | bytearray):
            if suspect(raw):
                # What cannot be stored and read back (lone surrogates, non-finite numbers, huge
                # integers, deep nesting) is refused here, as the HTTP parser refuses it.
                return EventIn.model_validate(loads(raw))
            return EventIn.model_validate_json(raw)
        if isinstance(raw, EventIn):
            return raw
        return EventIn.model_validate(raw)
    except BadJson as error:
        logger.warning("Dropping an event that cannot be stored: %s", error)
        return None
    except ValidationError as error:
        logger.warning(
            "Dropping an invalid event: %s",
            error.errors(include_url=False, include_context=False, include_input=False),
        )
        return None


# --- Storing ----------------------------------------------------------------------------------------


def _event_row(event: EventIn, *, workspace_id: uuid.UUID, received) -> Event:
    return Event(
        id=event.id,
        workspace_id=workspace_id,
        occurred=event.occurred,
        event=event.event,
        resource_id=event.resource_id,
        resource=event.resource,
        related=event.related,
        payload=event.payload,
        follows=event.follows,
        received=received,
    )


def event_resource_rows(row: Event) -> list[EventResource]:
    """The ``EventResource`` rows of a stored event: its resource (role ``""``) and each related
    resource, once per (id, role)."""
    seen = {(row.resource_id, "")}
    out = [
        EventResource(
            workspace_id=row.workspace_id,
            event_id=row.id,
            resource_id=row.resource_id,
            resource_role="",
            occurred=row.occurred,
        )
    ]
    for related in row.related:
        key = (related["prefect.resource.id"], related["prefect.resource.role"])
        if key in seen:
            continue
        seen.add(key)
        out.append(
            EventResource(
                workspace_id=row.workspace_id,
                event_id=row.id,
                resource_id=key[0],
                resource_role=key[1],
                occurred=row.occurred,
            )
        )
    return out


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
            rows = [_event_row(e, workspace_id=workspace_id, received=received) for e in fresh]
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
            new_rows = [row for row in rows if row.id in mine]
            # The resources of the events stored just now, so once per event however often it is
            # sent (a re-sent event is not in ``mine``).
            EventResource.objects.unscoped().bulk_create(
                [resource for row in new_rows for resource in event_resource_rows(row)], ignore_conflicts=True
            )
            stored.extend(new_rows)
            record_task_run_events(workspace_id, [e for e in fresh if e.id in mine and is_task_run_event(e)])
        _notify_on_commit(workspace_id, stored)
    metrics.record_events_ingested(
        len(stored), ((row.received - row.occurred).total_seconds() for row in stored)
    )
    return stored


# --- Listeners --------------------------------------------------------------------------------------

#: Called with ``(workspace_id, rows)`` once the transaction that stored the rows commits, whichever
#: way they came (a client's batch over HTTP or the events socket, an event the server emits): the
#: automations' trigger engine listens here (wired in ``orchestration.apps``, since the engine sits
#: above this layer).
_stored_listeners: list[Callable[[uuid.UUID, list[Event]], None]] = []


def events_stored_listen(listener: Callable[[uuid.UUID, list[Event]], None]) -> None:
    if listener not in _stored_listeners:
        _stored_listeners.append(listener)


def _notify(workspace_id: uuid.UUID, stored: list[Event]) -> None:
    for listener in _stored_listeners:
        try:
            listener(workspace_id, stored)
        except Exception:
            # Storage is the truth and the write has committed: a listener's failure is logged.
            logger.exception("Workspace %s: a listener of stored events failed", workspace_id)


def _notify_on_commit(workspace_id: uuid.UUID, stored: list[Event]) -> None:
    if stored and _stored_listeners:
        transaction.on_commit(lambda: _notify(workspace_id, stored), robust=True)


# --- Publishing -------------------------------------------------------------------------------------


async def events_publish(workspace_id: uuid.UUID | str, items: list[dict[str, str]]) -> None:
    """Send ``items`` to the workspace's live subscribers in every process (never raises: storage is
    the truth; a subscriber that misses a publication is told by the numbering and catches up from
    storage)."""
    for start in range(0, len(items), PUBLISH_CHUNK):
        try:
            await hub.publish(workspace_id, items[start : start + PUBLISH_CHUNK])
        except Exception:
            # The number is spent: subscribers see the gap and catch up.
            logger.exception("Could not publish events of workspace %s", workspace_id)
            return


class _Outbox:
    """Publications waiting on one event loop. Request threads append (through the loop) and one
    task drains: what piled up while a send was in flight goes out together, a workspace's items
    merged into as few group messages as the chunk size allows, in the order they were committed."""

    def __init__(self) -> None:
        self.pending: collections.deque[tuple[uuid.UUID, list[dict[str, str]]]] = collections.deque()
        self.draining = False

    def put(self, workspace_id: uuid.UUID, items: list[dict[str, str]]) -> None:
        self.pending.append((workspace_id, items))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        try:
            while self.pending:
                merged: dict[uuid.UUID, list[dict[str, str]]] = {}
                while self.pending:
                    workspace_id, items = self.pending.popleft()
                    merged.setdefault(workspace_id, []).extend(items)
                for workspace_id, items in merged.items():
                    await events_publish(workspace_id, items)
        finally:
            self.draining = False


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = weakref.WeakKeyDictionary()


def _outbox_put(workspace_id: uuid.UUID, items: list[dict[str, str]]) -> None:
    loop = asyncio.get_running_loop()
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = _Outbox()
    outbox.put(workspace_id, items)


def _publish_sync(workspace_id: uuid.UUID, items: list[dict[str, str]]) -> None:
    """Hand the publication to the server's event loop without waiting for it (the request that
    committed the events answers at once); outside a server, publish in place."""
    loop = serverloop.running_server_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_outbox_put, workspace_id, items)
            return
        except RuntimeError:  # the loop closed in between
            pass
    for start in range(0, len(items), PUBLISH_CHUNK):
        try:
            hub.publish_sync(workspace_id, items[start : start + PUBLISH_CHUNK])
        except Exception:
            logger.exception("Could not publish events of workspace %s", workspace_id)
            return


# --- Public surface ---------------------------------------------------------------------------------


def events_ingest(*, workspace_id: uuid.UUID, events: list[dict[str, Any]]) -> int:
    """Store a batch of events (and apply task-run events). Returns how many were new. Invalid
    events are dropped (logged). The new ones are published once the transaction commits (at once
    when there is no transaction)."""
    workspace_id = _uuid(workspace_id)
    parsed = [event for raw in events if (event := event_parse(raw)) is not None]
    stored = events_store(workspace_id=workspace_id, events=parsed)
    _publish_on_commit(workspace_id, stored)
    return len(stored)


def _publish_on_commit(workspace_id: uuid.UUID, stored: list[Event]) -> None:
    if stored:
        items = publication_items(stored)
        transaction.on_commit(lambda: _publish_sync(workspace_id, items), robust=True)


def object_event_record_on_commit(
    *,
    workspace_id: uuid.UUID,
    event: str,
    resource_id: str,
    resource_name: str | None,
    payload: dict[str, Any],
    related: list[dict[str, str]] | None = None,
) -> None:
    """An event the server emits about one of its objects (Prefect's ``_lifecycle_event``:
    ``prefect.<kind>.<action>`` on ``prefect.<kind>.<id>``), recorded as ``event_record_on_commit``
    records it."""
    resource = {"prefect.resource.id": resource_id}
    if resource_name is not None:
        resource["prefect.resource.name"] = resource_name
    event_record_on_commit(
        workspace_id=workspace_id,
        event={
            "id": str(uuid.uuid4()),
            "occurred": timezone.now().isoformat(),
            "event": event,
            "resource": resource,
            "related": related or [],
            "payload": payload,
        },
    )


def event_record_on_commit(*, workspace_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Record ``event`` (a Prefect event dict: id, occurred, event, resource, related, payload) in
    the workspace and publish it to ``/events/out`` subscribers once the current transaction
    commits.

    The row is written in the caller's transaction, so it commits (or rolls back) with the state
    change it reports. A client's task-run event (stored with its look-ups, in a savepoint) that
    cannot be stored is logged and does not break the caller.
    """
    events_record_on_commit(workspace_id=workspace_id, events=[event])


def events_record_on_commit(*, workspace_id: uuid.UUID, events: list[dict[str, Any]]) -> None:
    """``event_record_on_commit`` for several events at once: the engine's own events (ids it has
    just made, uuid4) are one INSERT of the events and one of their resources in the caller's
    transaction, no look-up and no savepoint, and one publication and one notification after
    commit; a client's task-run event among them is stored as ``event_record_on_commit`` stores it."""
    workspace_id = _uuid(workspace_id)
    rows: list[Event] = []
    received = timezone.now()
    for event in events:
        parsed = event_parse(event)
        if parsed is None:
            continue
        if is_task_run_event(parsed):
            _task_run_event_record(workspace_id, parsed)
            continue
        rows.append(_event_row(parsed, workspace_id=workspace_id, received=received))
    if not rows:
        return
    # A state change and its event commit together or not at all.
    resources = [resource for row in rows for resource in event_resource_rows(row)]

    def write_now() -> None:
        Event.objects.unscoped().bulk_create(rows)
        EventResource.objects.unscoped().bulk_create(resources)

    # Deferred (inside a state change's write batch), the events and their resources join its one
    # statement; written at once, the first ``write_now`` writes them all and the rest need nothing.
    insert_or_defer(rows[0], write_now)
    for obj in [*rows[1:], *resources]:
        insert_or_defer(obj, lambda: None)
    _publish_on_commit(workspace_id, rows)
    _notify_on_commit(workspace_id, rows)


def _task_run_event_record(workspace_id: uuid.UUID, parsed: EventIn) -> None:
    """A client's task-run event (stored with its look-ups, in a savepoint); one that cannot be
    stored is logged and does not break the caller."""
    try:
        with transaction.atomic():
            stored = events_store(workspace_id=workspace_id, events=[parsed])
    except DatabaseError:
        logger.exception("Could not record the event %s", parsed.event)
        return
    _publish_on_commit(workspace_id, stored)
