"""The trigger engine: reactive event triggers evaluated from a workspace's event stream, as
Prefect's ``server/events/triggers.py`` evaluates them (``reactive_evaluation`` and ``evaluate``).

* It runs after the transaction that stored a batch of events commits (``events_stored``, wired in
  ``orchestration.apps`` to the events store's listeners), in the process that stored them.
* A workspace's enabled automations are loaded once per batch, remembered per process for
  ``AUTOMATIONS_MEMO_SECONDS`` (a change in this process drops them at once; one made in another
  process is seen within that time). A batch with no interested trigger costs no query.
* A trigger's buckets are shared rows (``AutomationBucket``, unique per automation, trigger and
  bucketing key): created with ``INSERT … ON CONFLICT DO NOTHING`` and locked while an event is
  counted in them, in one transaction per (trigger, key). So two processes evaluating the same
  events fire a window once; a firing is a row unique per trigger, bucketing key and triggering
  event (``AutomationFiring``), so one event evaluated twice fires once.
* A firing emits ``prefect.automation.triggered`` in its transaction and hands the firing to the
  action runner after commit (``automation_actions``, through the Celery task set by
  ``firing_dispatch_set``).

Only reactive event triggers are evaluated here: proactive postures, compound and sequence triggers
are stored but not yet evaluated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestration.events.schemas import event_to_wire
from orchestration.events.services import event_record_on_commit
from orchestration.models import Automation, AutomationBucket, AutomationFiring, Event
from orchestration.schemas.automations import Automation as AutomationSchema
from orchestration.schemas.automations import EventTrigger, ResourceSpecification
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

#: Prefect's ``PRECEDING_EVENT_LOOKBACK``: a first bucket opens this far before its event, so other
#: events of the same moment arriving out of order still count.
PRECEDING_EVENT_LOOKBACK = dt.timedelta(minutes=15)
AUTOMATIONS_MEMO_SECONDS = 1.0
#: Events emitted by firings are evaluated too; a chain of firings stops at this depth (Prefect's
#: causal ordering bounds it likewise).
MAX_DEPTH = 20


# --- matching (Prefect's EventTrigger and ResourceSpecification) -----------------------------------


def label_matches(expected: str, value: str | None) -> bool:
    if value is None:
        return False
    positive = not expected.startswith("!")
    result = fnmatchcase(value, expected.removeprefix("!"))
    return result if positive else not result


def _spec_matches(spec: ResourceSpecification, resource: dict[str, Any]) -> bool:
    for label, expected in spec.root.items():
        candidates = [expected] if isinstance(expected, str) else expected
        if not any(label_matches(c, resource.get(label)) for c in candidates):
            return False
    return True


def _spec_includes(spec: ResourceSpecification, resources: list[dict[str, Any]]) -> bool:
    return not spec.root or any(_spec_matches(spec, r) for r in resources)


@dataclass
class LoadedTrigger:
    """An enabled automation's reactive event trigger, ready to match events."""

    automation_id: uuid.UUID
    automation_name: str
    trigger: EventTrigger
    actions: list[dict[str, Any]]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        names = self.trigger.expect | self.trigger.after
        if not self.trigger.expect:
            self.pattern = re.compile(".+")
        else:
            self.pattern = re.compile("|".join(re.escape(e).replace("\\*", ".+") for e in names))

    def covers(self, event: Event) -> bool:
        if not self.pattern.match(event.event):
            return False
        if not _spec_includes(self.trigger.match, [event.resource]):
            return False
        related = self.trigger.match_related
        specs = related if isinstance(related, list) else [related]
        return all(_spec_includes(spec, event.related) for spec in specs)

    def starts_after(self, name: str) -> bool:
        return any(label_matches(candidate, name) for candidate in self.trigger.after)

    def expects(self, name: str) -> bool:
        return not self.trigger.expect or any(label_matches(c, name) for c in self.trigger.expect)

    @property
    def immediate(self) -> bool:
        return self.trigger.within == dt.timedelta(0)

    def bucketing_key(self, event: Event) -> list[str]:
        return [find_resource_label(event, label) or "" for label in sorted(self.trigger.for_each)]


def find_resource_label(event: Event, label: str) -> str | None:
    """Prefect's ``Event.find_resource_label``: ``related:<role>:<label>`` reads the first related
    resource in that role; any other label reads the event's resource."""
    directive, _, related_label = label.rpartition(":")
    directive, _, role = directive.partition(":")
    if directive == "related":
        for related in event.related:
            if related.get("prefect.resource.role") == role:
                return related.get(related_label)
    return event.resource.get(label)


# --- the workspace's triggers, remembered -----------------------------------------------------------

_memo: dict[uuid.UUID, tuple[float, list[LoadedTrigger]]] = {}
_memo_lock = threading.Lock()


def automations_memo_clear(**kwargs) -> None:
    with _memo_lock:
        _memo.clear()


def _load(workspace_id: uuid.UUID) -> list[LoadedTrigger]:
    loaded = []
    for row in Automation.objects.for_workspace(workspace_id).filter(enabled=True):
        try:
            automation = AutomationSchema.model_validate(
                {"name": row.name, "trigger": row.trigger, "actions": row.actions,
                 "actions_on_trigger": row.actions_on_trigger, "actions_on_resolve": row.actions_on_resolve}
            )  # fmt: skip
        except ValueError:
            logger.warning("Automation %s cannot be read back; it is not evaluated", row.id)
            continue
        trigger = automation.trigger
        if not isinstance(trigger, EventTrigger) or trigger.posture != "Reactive":
            continue
        actions = [{"action": a, "source": "actions"} for a in row.actions] + [
            {"action": a, "source": "actions_on_trigger"} for a in row.actions_on_trigger or []
        ]
        loaded.append(LoadedTrigger(row.id, row.name, trigger, actions))
    return loaded


def workspace_triggers(workspace_id: uuid.UUID) -> list[LoadedTrigger]:
    now = time.monotonic()
    hit = _memo.get(workspace_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    triggers = _load(workspace_id)
    with _memo_lock:
        if len(_memo) > 10_000:
            _memo.clear()
        _memo[workspace_id] = (now + AUTOMATIONS_MEMO_SECONDS, triggers)
    return triggers


# --- firing dispatch --------------------------------------------------------------------------------

_dispatch: list[Callable[[uuid.UUID], None]] = []


def firing_dispatch_set(dispatch: Callable[[uuid.UUID, uuid.UUID], None]) -> None:
    """How a committed firing's actions are run (the Celery task, set in ``orchestration.apps``)."""
    _dispatch[:] = [dispatch]


def _dispatch_firing(workspace_id: uuid.UUID, firing_id: uuid.UUID) -> None:
    for dispatch in _dispatch:
        dispatch(workspace_id, firing_id)


# --- evaluation -------------------------------------------------------------------------------------

_depth: ContextVar[int] = ContextVar("automation_trigger_depth", default=0)


def events_stored(workspace_id: uuid.UUID, events: list[Event]) -> int:
    """Evaluate the workspace's reactive triggers against newly stored events (after their
    commit). Returns how many firings happened."""
    depth = _depth.get()
    if depth >= MAX_DEPTH:
        logger.warning("Workspace %s: automation chain deeper than %d; not evaluated", workspace_id, depth)
        return 0
    triggers = workspace_triggers(workspace_id)
    if not triggers:
        return 0
    token = _depth.set(depth + 1)
    fired = 0
    try:
        with workspace_scope(workspace_id):
            for event in sorted(events, key=lambda e: e.occurred):
                for trigger in triggers:
                    if trigger.covers(event):
                        fired += _evaluate_event(workspace_id, trigger, event)
    finally:
        _depth.reset(token)
    return fired


def _evaluate_event(workspace_id: uuid.UUID, trigger: LoadedTrigger, event: Event) -> int:
    """Prefect's ``reactive_evaluation`` for one trigger and event, in one transaction."""
    key = json.dumps(trigger.bucketing_key(event))
    name = event.event
    if not trigger.expects(name) and not trigger.starts_after(name):
        return 0
    with transaction.atomic():
        if trigger.trigger.after and trigger.starts_after(name):
            # An event in both `after` and `expect` opens the bucket at -1, so it counts to 0.
            _ensure(workspace_id, trigger, key, start=event.occurred, end=event.occurred + trigger.trigger.within,
                    event=event, count=-1 if trigger.expects(name) else 0)  # fmt: skip
        elif not trigger.trigger.after and trigger.expects(name):
            _ensure(workspace_id, trigger, key, start=event.occurred - PRECEDING_EVENT_LOOKBACK,
                    end=event.occurred + trigger.trigger.within, event=event, count=0)  # fmt: skip
        if not trigger.expects(name):
            return 0
        bucket = (
            AutomationBucket.objects.select_for_update()
            .filter(automation_id=trigger.automation_id, trigger_id=trigger.trigger.id, bucketing_key=key)
            .first()
        )
        if bucket is None:
            return 0
        return _evaluate(trigger, bucket, event.occurred, event)


def _ensure(workspace_id, trigger: LoadedTrigger, key: str, *, start, end, event: Event, count: int) -> None:
    AutomationBucket.objects.bulk_create(
        [
            AutomationBucket(
                workspace_id=workspace_id,
                automation_id=trigger.automation_id,
                trigger_id=trigger.trigger.id,
                bucketing_key=key,
                start=start,
                end=end,
                count=count,
                last_event=event_to_wire(event),
                last_operation="ensure_bucket[insert]",
            )
        ],
        ignore_conflicts=True,
    )


def _evaluate(trigger: LoadedTrigger, bucket: AutomationBucket, now: dt.datetime, event: Event | None) -> int:
    """Prefect's ``evaluate`` (reactive posture), on a locked bucket."""
    count = 1 if event is not None else 0
    if now < bucket.start:
        return 0  # a late event for a window that already fired or closed
    if count and (trigger.immediate or bucket.start <= now < bucket.end):
        bucket.count += count
        bucket.last_event = event_to_wire(event)
        bucket.last_operation = "increment_bucket"
        bucket.save(update_fields=["count", "last_event", "last_operation", "updated"])
        count = 0

    fired = 0
    if bucket.count >= trigger.trigger.threshold:
        fired = _fire(trigger, bucket, event)
        removed = True
    elif now < bucket.end:
        return 0
    else:
        removed = False

    if trigger.trigger.after or trigger.immediate:
        if removed or trigger.trigger.after:
            bucket.delete()
        return fired
    # The next window, in the same row (so a writer waiting on its lock reads it next).
    start = max(bucket.end, now)
    bucket.start, bucket.end = start, start + trigger.trigger.within
    bucket.count = 0 if (count > 0 or removed) else count
    bucket.last_operation = "start_new_bucket"
    bucket.save(update_fields=["start", "end", "count", "last_operation", "updated"])
    if count > 0:
        # An event beyond the window it arrived in: it opens the next one and counts there.
        return fired + _evaluate(trigger, bucket, now, event)
    return fired


def _fire(trigger: LoadedTrigger, bucket: AutomationBucket, event: Event | None) -> int:
    triggering_event = event_to_wire(event) if event is not None else bucket.last_event
    labels = dict(zip(sorted(trigger.trigger.for_each), json.loads(bucket.bucketing_key), strict=False))
    now = timezone.now()
    related: list[dict[str, str]] = []
    if triggering_event:
        related.append(
            {"prefect.resource.id": f"prefect.event.{triggering_event['id']}",
             "prefect.resource.role": "triggering-event"}
        )  # fmt: skip
    triggered = {
        "id": str(uuid.uuid4()),
        "occurred": now.isoformat(),
        "event": "prefect.automation.triggered",
        "resource": {
            "prefect.resource.id": f"prefect.automation.{trigger.automation_id}",
            "prefect.resource.name": trigger.automation_name,
            "prefect.posture": trigger.trigger.posture,
        },
        "related": related,
        "payload": {"triggering_labels": labels, "triggering_event": triggering_event},
    }
    firing = AutomationFiring(
        workspace_id=bucket.workspace_id,
        automation_id=trigger.automation_id,
        trigger_id=trigger.trigger.id,
        bucketing_key=bucket.bucketing_key,
        bucket_start=bucket.start,
        triggered=now,
        triggering_labels=labels,
        triggering_event=triggering_event,
        triggering_event_id=triggering_event["id"] if triggering_event else None,
        triggered_event_id=triggered["id"],
        # As Prefect's ``act``: `actions_on_trigger` see the triggered event as their triggering one.
        actions=[
            {**entry, "event": triggered} if entry["source"] == "actions_on_trigger" else entry
            for entry in trigger.actions
        ],
    )
    try:
        with transaction.atomic():
            firing.save(force_insert=True)
    except IntegrityError:
        logger.info("Automation %s: already fired for this event", trigger.automation_id)
        return 0
    event_record_on_commit(workspace_id=bucket.workspace_id, event=triggered)
    workspace_id, firing_id = bucket.workspace_id, firing.id
    transaction.on_commit(lambda: _dispatch_firing(workspace_id, firing_id), robust=True)
    return 1


#: Prefect's ``PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER``: how long a window that ended is kept.
EXPIRED_BUCKET_BUFFER = dt.timedelta(seconds=60)


def automation_buckets_sweep(*, now: dt.datetime | None = None) -> int:
    """Prefect's ``sweep_closed_buckets``: windows that ended more than the buffer ago, in every
    workspace (a sweep across tenants, on purpose). Returns how many were deleted."""
    older_than = (now or timezone.now()) - EXPIRED_BUCKET_BUFFER
    deleted, _ = AutomationBucket.objects.unscoped().filter(end__lte=older_than).delete()
    return deleted


def automation_buckets_clear(*, automation_id: uuid.UUID) -> None:
    """A changed or disabled automation starts its windows afresh (its trigger ids change)."""
    AutomationBucket.objects.filter(automation_id=automation_id).delete()
