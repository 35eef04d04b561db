"""Task runs from the client's task-run events, as Prefect's ``task_run_recorder`` builds them.

The ``prefect`` client reports task runs only as events (``prefect.task-run.<State name>`` with the
resource label ``prefect.orchestration == "client"``); there is no HTTP call for them. Each such event
carries the run (``payload.task_run``) and its new state (``payload.validated_state``):

* the task run's id is the resource id (``prefect.task-run.<uuid>``), its flow run the related
  resource in the role ``flow-run``;
* the state's id is the event id and its timestamp the event's ``occurred``; every state is kept
  (a re-sent event adds nothing);
* the run row is inserted, or updated only when the event is newer than the run's current state, so
  events arriving late or twice never roll a run back; an update writes only the fields the event
  carries (the client leaves out what is unset, e.g. ``start_time`` before the run starts);
* a task run id that belongs to another workspace is left alone, and so are its events' states;
* a run is also known by Prefect's idempotency key (flow run, task key, dynamic key): an event with
  an unknown task run id whose key names a run of the workspace (one created over HTTP by
  ``POST task_runs/``) is that run's, its state recorded under the run's id, as Prefect does;
* whichever arrives first, the newest state wins: ``set_task_run_state`` likewise leaves a run
  whose current state is newer than its proposal where it is (the proposal only joins the history).

Runs inside the caller's transaction (``services.store_events``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone
from pydantic import TypeAdapter, ValidationError

from orchestration.events.schemas import EventIn
from orchestration.models import TaskRun, TaskRunState
from orchestration.models.states import StateType

logger = logging.getLogger(__name__)

TASK_RUN_EVENT_PREFIX = "prefect.task-run."
TASK_RUN_RESOURCE_PREFIX = "prefect.task-run."
FLOW_RUN_RESOURCE_PREFIX = "prefect.flow-run."

_DATETIME = TypeAdapter(dt.datetime)
_TIMEDELTA = TypeAdapter(dt.timedelta)


def is_task_run_event(event: EventIn) -> bool:
    return (
        event.event.startswith(TASK_RUN_EVENT_PREFIX)
        and event.resource.get("prefect.orchestration") == "client"
    )


def _object_id(resource_id: str | None, prefix: str) -> uuid.UUID | None:
    if not resource_id or not resource_id.startswith(prefix):
        return None
    try:
        return uuid.UUID(resource_id[len(prefix) :])
    except ValueError:
        return None


# --- Payload fields → model fields ------------------------------------------------------------------


def _text(limit: int | None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError
        return value[:limit] if limit else value

    return convert


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _datetime(value: Any) -> dt.datetime:
    parsed = _DATETIME.validate_python(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return int(value)


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _TIMEDELTA.validate_python(value).total_seconds()


def _of(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError
        return value

    return convert


# ``payload.task_run`` key → converter (a missing or unconvertible key is not written).
_TASK_RUN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _text(255),
    "task_key": _text(255),
    "dynamic_key": _text(255),
    "cache_key": _optional(_text(None)),
    "cache_expiration": _optional(_datetime),
    "task_version": _optional(_text(255)),
    "empirical_policy": _of(dict),
    "tags": _of(list),
    "labels": _of(dict),
    "task_inputs": _of(dict),
    "run_count": _integer,
    "flow_run_run_count": _integer,
    "expected_start_time": _optional(_datetime),
    "next_scheduled_start_time": _optional(_datetime),
    "start_time": _optional(_datetime),
    "end_time": _optional(_datetime),
    "total_run_time": _seconds,
}


def _state_name(state_type: str) -> str:
    return " ".join(part.capitalize() for part in state_type.split("_"))


@dataclass
class _Record:
    """One task-run event, read."""

    event: EventIn
    task_run_id: uuid.UUID
    fields: dict[str, Any]  # what the event sets on the run, current state included
    state: dict[str, Any]  # the TaskRunState row's fields

    @property
    def occurred(self) -> dt.datetime:
        return self.event.occurred


def _read(event: EventIn) -> _Record | None:
    task_run_id = _object_id(event.resource_id, TASK_RUN_RESOURCE_PREFIX)
    payload = event.payload
    validated = payload.get("validated_state")
    task_run = payload.get("task_run")
    if task_run_id is None or not isinstance(validated, dict) or not isinstance(task_run, dict):
        logger.warning("Ignoring task-run event %s: no task run id, task_run or validated_state", event.id)
        return None
    state_type = validated.get("type")
    if state_type not in StateType.values:
        logger.warning("Ignoring task-run event %s: unknown state type %r", event.id, state_type)
        return None

    flow_run_id = None
    for related in event.related:
        if related.get("prefect.resource.role") == "flow-run":
            flow_run_id = _object_id(related.get("prefect.resource.id"), FLOW_RUN_RESOURCE_PREFIX)
            break

    fields: dict[str, Any] = {}
    for key, convert in _TASK_RUN_FIELDS.items():
        if key not in task_run:
            continue
        try:
            value = convert(task_run[key])
        except (TypeError, ValueError, ValidationError):
            logger.warning("Task-run event %s: ignoring the unreadable field %r", event.id, key)
            continue
        if value is None and not TaskRun._meta.get_field(key).null:
            continue
        fields[key] = value

    name = validated.get("name")
    name = (name if isinstance(name, str) and name else _state_name(state_type))[:255]
    message = validated.get("message")
    details = validated.get("state_details")
    details = dict(details) if isinstance(details, dict) else {}
    details["task_run_id"] = str(task_run_id)
    details["flow_run_id"] = str(flow_run_id) if flow_run_id else None

    fields.update(
        flow_run_id=flow_run_id,
        state_id=event.id,
        state_type=state_type,
        state_name=name,
        state_timestamp=event.occurred,
    )
    state = {
        "id": event.id,
        "type": state_type,
        "name": name,
        "timestamp": event.occurred,
        "message": message if isinstance(message, str) else None,
        "data": validated.get("data"),
        "state_details": details,
    }
    return _Record(event=event, task_run_id=task_run_id, fields=fields, state=state)


def _new_task_run(workspace_id: uuid.UUID, record: _Record) -> TaskRun:
    defaults = {
        "name": record.event.resource.get("prefect.resource.name", "")[:255],
        "task_key": "",
        "dynamic_key": "",
    }
    return TaskRun(id=record.task_run_id, workspace_id=workspace_id, **{**defaults, **record.fields})


def _natural_key(record: _Record) -> tuple[uuid.UUID, str, str] | None:
    fields = record.fields
    if fields.get("flow_run_id") is None or "task_key" not in fields or "dynamic_key" not in fields:
        return None
    return (fields["flow_run_id"], fields["task_key"], fields["dynamic_key"])


def _rewrite(record: _Record, task_run_id: uuid.UUID) -> None:
    record.task_run_id = task_run_id
    record.state["state_details"]["task_run_id"] = str(task_run_id)


def _to_canonical_ids(workspace_id: uuid.UUID, records: list[_Record]) -> None:
    """Prefect's idempotency key of a task run is (flow run, task key, dynamic key), as well as its
    id: an event whose task run id is unknown but whose key names a run of this workspace (created
    over HTTP, or by an earlier event under another id) is that run's, and so is a second unknown id
    with the same key in one batch (the first one seen keeps its id), as Prefect's recorder
    rewrites them to the canonical id."""
    ids = {record.task_run_id for record in records}
    known = set(TaskRun.objects.unscoped().filter(id__in=ids).values_list("id", flat=True))
    keyed = [
        (record, key)
        for record in records
        if record.task_run_id not in known and (key := _natural_key(record)) is not None
    ]
    if not keyed:
        return
    canonical: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}
    condition = Q(pk__in=[])
    for _, (flow_run_id, task_key, dynamic_key) in keyed:
        condition |= Q(flow_run_id=flow_run_id, task_key=task_key, dynamic_key=dynamic_key)
    for run_id, flow_run_id, task_key, dynamic_key in (
        TaskRun.objects.for_workspace(workspace_id)
        .filter(condition)
        .values_list("id", "flow_run_id", "task_key", "dynamic_key")
    ):
        canonical[(flow_run_id, task_key, dynamic_key)] = run_id
    for record, key in keyed:
        canonical.setdefault(key, record.task_run_id)
        if canonical[key] != record.task_run_id:
            _rewrite(record, canonical[key])


def record_task_run_events(workspace_id: uuid.UUID, events: Iterable[EventIn]) -> int:
    """Apply task-run events (already filtered by ``is_task_run_event``) to the workspace's task
    runs. Returns how many task runs were written to. Call inside a transaction."""
    records = [record for event in events if (record := _read(event)) is not None]
    if not records:
        return 0
    _to_canonical_ids(workspace_id, records)
    # Newest state per run; on equal timestamps the later arrival wins (the sort is stable).
    records.sort(key=lambda record: record.occurred)
    newest: dict[uuid.UUID, _Record] = {}
    for record in records:
        newest[record.task_run_id] = record
    ids = sorted(newest)  # one lock order for every writer

    runs = TaskRun.objects.unscoped()
    owners = {
        run_id: (owner, None) for run_id, owner in runs.filter(id__in=ids).values_list("id", "workspace_id")
    }
    missing = [run_id for run_id in ids if run_id not in owners]
    if missing:
        runs.bulk_create(
            [_new_task_run(workspace_id, newest[run_id]) for run_id in missing], ignore_conflicts=True
        )
        # A concurrent writer (or another workspace) may have taken an id meanwhile: read who owns it.
        for run_id, owner, state_id in runs.filter(id__in=missing).values_list(
            "id", "workspace_id", "state_id"
        ):
            owners[run_id] = (owner, state_id)

    foreign = [run_id for run_id in ids if owners.get(run_id, (None,))[0] != workspace_id]
    if foreign:
        logger.warning(
            "Workspace %s: ignoring events of %d task run id(s) owned by another workspace",
            workspace_id,
            len(foreign),
        )
    ours = [run_id for run_id in ids if owners.get(run_id, (None,))[0] == workspace_id]

    now = timezone.now()
    for run_id in ours:
        record = newest[run_id]
        if owners[run_id][1] == record.event.id:
            continue  # inserted just now from this very event
        runs.filter(
            Q(state_timestamp__isnull=True) | Q(state_timestamp__lt=record.occurred),
            pk=run_id,
            workspace_id=workspace_id,
        ).update(**record.fields, updated=now)

    owned = set(ours)
    TaskRunState.objects.unscoped().bulk_create(
        [
            TaskRunState(workspace_id=workspace_id, task_run_id=record.task_run_id, **record.state)
            for record in records
            if record.task_run_id in owned
        ],
        ignore_conflicts=True,
    )
    return len(ours)
