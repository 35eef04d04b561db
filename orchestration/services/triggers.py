"""The trigger engine: event triggers evaluated from a workspace's event stream, as Prefect's
``server/events/triggers.py`` evaluates them (``reactive_evaluation``, ``evaluate``,
``proactive_evaluation``, ``evaluate_composite_trigger``).

* It runs after the transaction that stored a batch of events commits (``events_stored``, wired in
  ``orchestration.apps`` to the events store's listeners), in the process that stored them.
* A workspace's enabled automations are loaded once per batch, remembered per process for
  ``AUTOMATIONS_MEMO_SECONDS`` (a change in this process drops them at once; one made in another
  process is seen within that time). A batch with no interested trigger costs no query.
* A batch is evaluated in one transaction, whatever its size: the (trigger, bucketing key) pairs
  it touches are locked (a transaction-scoped advisory lock per pair, taken in one sorted order,
  which also holds a bucket that does not exist yet), their buckets (``AutomationBucket``, unique
  per automation, trigger and key) read in one statement, the events evaluated in memory in
  order, and the buckets written back with one DELETE and one upsert. Every writer of a bucket
  (the batch, the proactive clock) takes the same lock first, so two processes evaluating the
  same events fire a window once; a firing is a row unique per trigger, bucketing key and
  triggering event (``AutomationFiring``), so one event evaluated twice fires once. A batch that
  PostgreSQL breaks for a deadlock is evaluated again from the start.
* A batch whose evaluation fails all the same (a database hiccup, deadlocks past the retries) left
  nothing behind, so ``events_stored_listener`` hands its event ids to a task
  (``stored_events_evaluate``, retried with backoff) that reads the events back (in their
  workspace) and evaluates them at the chain depth they had, recording the deferred evaluation in
  its transaction (``AutomationDeferredEvaluation``): a task delivered twice counts them once. Only
  a failure while committing, which may have counted the batch, is logged and not evaluated again.
* A firing emits ``prefect.automation.triggered`` (and ``…resolved``) in its transaction and hands
  the firing to the action runner after commit (``automation_actions``, through the Celery task
  set by ``firing_dispatch_set``). A transaction's firings are written together at its end: their
  rows in one statement, their events and resources in one each, one hand-off after commit.

* Proactive triggers count their events the same way; a window that ends with fewer than
  ``threshold`` fires on the clock (``proactive_triggers_evaluate``, a beat task every 5 s), each
  ended window evaluated under its row lock and its firing unique per window (``window_key``), so
  two clocks fire it once and a restart loses none (the windows are rows, and the sweep leaves
  an enabled proactive trigger's windows to the clock). A workspace whose evaluation fails is
  logged and the clock goes on with the others.
* A window's arithmetic never overflows: its ends are held at the first and last moment a
  datetime holds (an automation stored with a huge ``within``, an event dated year 9999); new
  automations' ``within`` is bounded (``MAX_WITHIN`` in the schemas).
* Held ``expect`` events (Prefect's ``automation_held_events``): events of one key can be evaluated
  in any order, so a proactive trigger with ``after`` holds each ``expect``-only event
  (``AutomationHeldEvent``, under the key's lock), and a window that opens or rolls later counts
  the held events that occurred inside it. An event already held was counted once and is not
  counted again (one event evaluated by two processes, or redelivered). Each key keeps what a
  window can still need (per ``within``-wide slot, the first and last ``threshold`` events, none
  older than ``HELD_EXPECT_EVENTS_RETENTION`` before the newest); the sweep removes the rest.
* The events clock (Prefect's ``update_events_clock``/``get_events_clock_offset``), per workspace
  in the shared cache: how far behind real time the newest event was when it was stored. The
  clock judges a workspace's ended proactive windows that much later, so an expected event still
  on its way (a client's buffer, a busy ingest) is counted before its window is judged. Unlike
  Prefect's, it moves only when a newer event arrives, so a late, old event does not hold every
  window back; a clock ahead of real time counts as on time.
* Compound and sequence triggers: a child's firing is recorded (unique as any firing) and stored as
  the parent's latest child firing (``AutomationChildFiring``) under a lock on the automation's
  row; the parent fires when ``require`` is met (compound) or its children fired in order
  (sequence) within ``within``, consuming them; a parent of a parent is fed likewise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from core import metrics
from orchestration.events.schemas import event_to_wire
from orchestration.events.services import events_record_on_commit
from orchestration.models import (
    Automation,
    AutomationBucket,
    AutomationChildFiring,
    AutomationDeferredEvaluation,
    AutomationFiring,
    AutomationHeldEvent,
    Event,
)
from orchestration.schemas.automations import Automation as AutomationSchema
from orchestration.schemas.automations import (
    CompoundTrigger,
    EventTrigger,
    ResourceSpecification,
    SequenceTrigger,
)
from orchestration.services.automation_actions import automation_action_runs_fail_stalled
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

#: Prefect's ``PRECEDING_EVENT_LOOKBACK``: a first bucket opens this far before its event, so other
#: events of the same moment arriving out of order still count.
PRECEDING_EVENT_LOOKBACK = dt.timedelta(minutes=15)
AUTOMATIONS_MEMO_SECONDS = 1.0
#: How long a proactive `after` trigger that fired for a key waits for the expected event that
#: resolves it (at least its own ``within``).
RESOLUTION_WAIT = dt.timedelta(hours=1)
#: Prefect's ``HELD_EXPECT_EVENTS_RETENTION``: a held event outlasts both a late follower and an
#: ``after`` event opening a window up to one lookback before it.
HELD_EXPECT_EVENTS_RETENTION = 2 * PRECEDING_EVENT_LOOKBACK
#: Events emitted by firings are evaluated too; a chain of firings stops at this depth (Prefect's
#: causal ordering bounds it likewise).
MAX_DEPTH = 20

_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _later(moment: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``moment + delta`` (``delta`` not negative), held at the last moment a datetime holds: a
    window's arithmetic never raises, whatever ``within`` a stored automation has or whenever a
    client says its event occurred (year 1 or 9999)."""
    try:
        return moment + delta
    except OverflowError:
        return _LATEST


def _earlier(moment: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``moment - delta`` (``delta`` not negative), held at the first moment a datetime holds."""
    try:
        return moment - delta
    except OverflowError:
        return _EARLIEST


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
    """An enabled automation's event trigger, ready to match events: the automation's own trigger,
    or a child of its compound and sequence triggers (``parents``, innermost first)."""

    automation_id: uuid.UUID
    automation_name: str
    trigger: EventTrigger
    actions: list[dict[str, Any]]
    parents: list[CompoundTrigger | SequenceTrigger] = field(default_factory=list)
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

    @property
    def proactive(self) -> bool:
        return self.trigger.posture == "Proactive"

    @property
    def holds_expect_events(self) -> bool:
        """Prefect's ``holds_expect_events``: a proactive trigger with ``after``."""
        return self.proactive and bool(self.trigger.after)

    def meets_threshold(self, count: int) -> bool:
        if self.proactive:
            return count < self.trigger.threshold
        return count >= self.trigger.threshold

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
        actions = (
            [{"action": a, "source": "actions"} for a in row.actions]
            + [{"action": a, "source": "actions_on_trigger"} for a in row.actions_on_trigger or []]
            + [{"action": a, "source": "actions_on_resolve"} for a in row.actions_on_resolve or []]
        )
        for trigger, parents in _event_triggers(automation.trigger, []):
            loaded.append(LoadedTrigger(row.id, row.name, trigger, actions, parents))
    return loaded


def _event_triggers(trigger, parents: list) -> list[tuple[EventTrigger, list]]:
    """The event triggers of a trigger tree, each with its composite parents (innermost first)."""
    if isinstance(trigger, EventTrigger):
        return [(trigger, parents)]
    return [found for child in trigger.triggers for found in _event_triggers(child, [trigger, *parents])]


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

_dispatch: list[Callable[[uuid.UUID, list[uuid.UUID]], None]] = []


def firing_dispatch_set(dispatch: Callable[[uuid.UUID, list[uuid.UUID]], None]) -> None:
    """How a committed batch's firings have their actions run (the Celery task, one message per
    firing sent in one go; set in ``orchestration.apps``)."""
    _dispatch[:] = [dispatch]


def _dispatch_firings(workspace_id: uuid.UUID, firing_ids: list[uuid.UUID]) -> None:
    for dispatch in _dispatch:
        dispatch(workspace_id, firing_ids)


class _Firings:
    """The firings of one transaction (a stored batch, or one proactive window), written at its end
    in one go: the firing rows in one ``INSERT … ON CONFLICT DO NOTHING`` (and one read of which
    rows are ours), the ``prefect.automation.triggered`` / ``…resolved`` events of the new ones and
    their resources through the events store in one statement each, and one hand-off of their
    actions after commit. A firing whose row already exists (the same event or window evaluated
    again) is skipped with its events and actions, so it still happens once; the evaluation that
    made it counted it as fired, as Prefect's ``fire`` does (the window did fire)."""

    def __init__(self, workspace_id: uuid.UUID) -> None:
        self.workspace_id = workspace_id
        self.rows: list[AutomationFiring] = []
        self.emitted: dict[uuid.UUID, list[dict[str, Any]]] = {}
        self.reactive_event: set[uuid.UUID] = set()

    def add(self, row: AutomationFiring, emitted: list[dict[str, Any]], *, reactive_event: bool) -> None:
        self.rows.append(row)
        self.emitted[row.id] = emitted
        if reactive_event:
            self.reactive_event.add(row.id)

    def write(self) -> int:
        """Write what the transaction fired; returns how many firings are new."""
        if not self.rows:
            return 0
        rows, self.rows = self.rows, []
        AutomationFiring.objects.bulk_create(rows, ignore_conflicts=True)
        # The ids are fresh: those found are the rows this statement inserted.
        mine = set(AutomationFiring.objects.filter(id__in=[r.id for r in rows]).values_list("id", flat=True))
        new = [row for row in rows if row.id in mine]
        for row in rows:
            if row.id not in mine:
                logger.info(
                    "Automation %s: trigger %s already fired for this", row.automation_id, row.trigger_id
                )
        events_record_on_commit(
            workspace_id=self.workspace_id, events=[e for row in new for e in self.emitted[row.id]]
        )
        now = timezone.now()
        for row in new:
            arrived = _arrived(row.triggering_event) if row.id in self.reactive_event else None
            if arrived is not None:
                metrics.record_trigger_lag((now - arrived).total_seconds())
        if new:
            workspace_id, firing_ids = self.workspace_id, [row.id for row in new]
            transaction.on_commit(lambda: _dispatch_firings(workspace_id, firing_ids), robust=True)
        return len(new)


_firings: ContextVar[_Firings | None] = ContextVar("automation_firings", default=None)


@contextmanager
def _collecting_firings(workspace_id: uuid.UUID) -> Iterator[_Firings]:
    """Inside, ``_fire_node`` adds its firings to the one ``_Firings`` yielded, which the caller
    writes before its transaction ends."""
    firings = _Firings(workspace_id)
    token = _firings.set(firings)
    try:
        yield firings
    finally:
        _firings.reset(token)


# --- evaluation -------------------------------------------------------------------------------------

_depth: ContextVar[int] = ContextVar("automation_trigger_depth", default=0)


def events_stored(
    workspace_id: uuid.UUID, events: list[Event], *, evaluation_id: uuid.UUID | None = None
) -> int:
    """Evaluate the workspace's reactive triggers against newly stored events (after their
    commit), the whole batch in one transaction. Returns how many firings happened. Raises when
    the evaluation fails (``events_stored_listener`` hands the batch to a task then).
    ``evaluation_id``: a deferred evaluation's, recorded in its transaction, so the batch is
    evaluated once however often its task runs."""
    depth = _depth.get()
    if depth >= MAX_DEPTH:
        logger.warning("Workspace %s: automation chain deeper than %d; not evaluated", workspace_id, depth)
        return 0
    triggers = workspace_triggers(workspace_id)
    if not triggers:
        return 0
    if any(t.proactive for t in triggers):
        _events_clock_advance(workspace_id, events)
    work = [
        (trigger, event)
        for event in sorted(events, key=lambda e: e.occurred)
        for trigger in triggers
        if trigger.covers(event) and (trigger.expects(event.event) or trigger.starts_after(event.event))
    ]
    if not work:
        return 0
    token = _depth.set(depth + 1)
    try:
        with workspace_scope(workspace_id):
            return _evaluate_batch(workspace_id, work, evaluation_id=evaluation_id)
    finally:
        _depth.reset(token)


# --- a failed evaluation, deferred ------------------------------------------------------------------

#: Event ids per deferred evaluation (one task message each).
DEFERRED_EVALUATION_CHUNK = 500
#: How long a deferred evaluation's row is kept: far past any redelivery of its task.
DEFERRED_EVALUATION_RETENTION = dt.timedelta(days=7)

_evaluation_dispatch: list[Callable[[uuid.UUID, list[uuid.UUID], int, uuid.UUID], None]] = []


def evaluation_dispatch_set(dispatch: Callable[[uuid.UUID, list[uuid.UUID], int, uuid.UUID], None]) -> None:
    """How a batch whose evaluation failed is evaluated later: ``dispatch(workspace_id, event_ids,
    depth, evaluation_id)`` sends the Celery task (set in ``orchestration.apps``)."""
    _evaluation_dispatch[:] = [dispatch]


class EvaluationOutcomeUnknown(Exception):
    """The batch's transaction failed while committing (a connection lost then): it may have
    committed, so evaluating its events again might count them twice."""


def events_stored_listener(workspace_id: uuid.UUID, events: list[Event]) -> None:
    """The events store's listener: ``events_stored``, and when it fails (a database hiccup, a
    deadlock retried too often), the batch's event ids handed to a task that evaluates them again
    from the database (``stored_events_evaluate``). A failed evaluation left nothing behind (one
    transaction, rolled back), so the events are counted once; a firing is unique anyway."""
    depth = _depth.get()
    try:
        events_stored(workspace_id, events)
        return
    except EvaluationOutcomeUnknown:
        logger.exception(
            "Workspace %s: trigger evaluation of %d event(s) failed while committing; it may have "
            "counted them, so it is not evaluated again",
            workspace_id,
            len(events),
        )
        return
    except Exception:
        logger.warning(
            "Workspace %s: trigger evaluation of %d event(s) failed; deferred to a task",
            workspace_id,
            len(events),
            exc_info=True,
        )
    if not _evaluation_dispatch:
        logger.error(
            "Workspace %s: %d event(s) not evaluated (no task to defer to)", workspace_id, len(events)
        )
        return
    ids = [event.id for event in events]
    for start in range(0, len(ids), DEFERRED_EVALUATION_CHUNK):
        chunk = ids[start : start + DEFERRED_EVALUATION_CHUNK]
        try:
            for dispatch in _evaluation_dispatch:
                dispatch(workspace_id, chunk, depth, uuid.uuid4())
        except Exception:  # noqa: BLE001 - the events are stored; only their evaluation is lost
            logger.exception(
                "Workspace %s: %d event(s) not evaluated (their deferred evaluation could not be sent)",
                workspace_id,
                len(chunk),
            )


def stored_events_evaluate(
    *, workspace_id: uuid.UUID, event_ids: list[uuid.UUID], depth: int, evaluation_id: uuid.UUID
) -> int:
    """A deferred evaluation: the workspace's stored events of ``event_ids`` (another workspace's
    are not read; one deleted since is skipped) evaluated through ``events_stored`` at the chain
    depth they were stored at, once per ``evaluation_id``. Raises when the evaluation fails again
    (the task retries). Returns how many firings happened."""
    with workspace_scope(workspace_id):
        events = list(Event.objects.filter(id__in=event_ids))
    if not events:
        return 0
    token = _depth.set(depth)
    try:
        return events_stored(workspace_id, events, evaluation_id=evaluation_id)
    finally:
        _depth.reset(token)


def _evaluation_claim(workspace_id: uuid.UUID, evaluation_id: uuid.UUID) -> bool:
    """Record a deferred evaluation in its transaction; False when it is recorded already (its
    task ran before and committed: the events were counted)."""
    try:
        with transaction.atomic():
            AutomationDeferredEvaluation.objects.create(id=evaluation_id, workspace_id=workspace_id)
    except IntegrityError:
        logger.info("Workspace %s: deferred evaluation %s was done already", workspace_id, evaluation_id)
        return False
    return True


#: How long a workspace's events clock is kept after its last move.
EVENTS_CLOCK_TTL_SECONDS = 24 * 3600


def _events_clock_key(workspace_id: uuid.UUID) -> str:
    return f"automations:events-clock:{workspace_id}"


def _events_clock_advance(workspace_id: uuid.UUID, events: list[Event]) -> None:
    """The workspace's clock moves to the batch's newest event (no further than now) when that is
    newer, remembering when it was seen. Two processes storing at once may leave the older of
    their two readings, which only judges windows a little later."""
    seen = time.time()
    newest = min(max(e.occurred for e in events).timestamp(), seen)
    key = _events_clock_key(workspace_id)
    try:
        clock = cache.get(key)
        if clock is None or newest >= clock[0]:
            cache.set(key, (newest, seen), timeout=EVENTS_CLOCK_TTL_SECONDS)
    except Exception as error:  # noqa: BLE001 - the clock is advice; the events are stored already
        logger.warning("Workspace %s: events clock not updated (%s)", workspace_id, type(error).__name__)


def events_clock_offset(workspace_id: uuid.UUID) -> dt.timedelta:
    """How far behind real time the workspace's newest event was when it was stored (zero or
    negative; zero without a clock)."""
    try:
        clock = cache.get(_events_clock_key(workspace_id))
    except Exception as error:  # noqa: BLE001 - without the clock, windows are judged on time
        logger.warning("Workspace %s: events clock unavailable (%s)", workspace_id, type(error).__name__)
        return dt.timedelta(0)
    if not clock:
        return dt.timedelta(0)
    newest, seen = clock
    return dt.timedelta(seconds=min(0.0, newest - seen))


#: A batch whose transaction PostgreSQL broke for a deadlock is evaluated again from the start
#: (nothing of it was kept), at most this many times.
DEADLOCK_ATTEMPTS = 3


def _evaluate_batch(
    workspace_id: uuid.UUID,
    work: list[tuple[LoadedTrigger, Event]],
    *,
    evaluation_id: uuid.UUID | None = None,
) -> int:
    """Prefect's ``reactive_evaluation`` for every (trigger, event) of a stored batch, in event
    order, in one transaction: the buckets of the batch's (trigger, key) pairs are locked and read
    in one statement, evaluated in memory, and written back in one statement each for deletes and
    upserts; the batch's firings are written together at its end, in the same transaction
    (``_Firings``). Returns how many firings are new. A failure while committing raises
    ``EvaluationOutcomeUnknown`` (and is not retried): the batch may have been counted."""
    keyed = [(trigger, json.dumps(trigger.bucketing_key(event)), event) for trigger, event in work]
    composite = sorted({t.automation_id for t, _, _ in keyed if t.parents})
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        committing = False
        try:
            with transaction.atomic(), _collecting_firings(workspace_id) as firings:
                if evaluation_id is not None and not _evaluation_claim(workspace_id, evaluation_id):
                    return 0
                buckets = _Buckets.lock_and_read(workspace_id, [(t, key) for t, key, _ in keyed])
                if composite:
                    # Child firings lock their automation's row: taken here, in one order, so two
                    # batches firing children of the same automations cannot wait on each other.
                    list(Automation.objects.select_for_update().filter(id__in=composite).order_by("id"))
                for t, key, event in keyed:
                    _evaluate_event(workspace_id, t, key, event, buckets)
                buckets.write()
                fired = firings.write()
                committing = True
            return fired
        except Exception as error:
            if committing:
                raise EvaluationOutcomeUnknown(workspace_id) from error
            if (
                not isinstance(error, OperationalError)
                or attempt == DEADLOCK_ATTEMPTS
                or transaction.get_connection().in_atomic_block
            ):
                raise
            logger.warning("Workspace %s: trigger evaluation retried after %s", workspace_id, error)
    return 0


def _evaluate_event(
    workspace_id: uuid.UUID, trigger: LoadedTrigger, key: str, event: Event, buckets: _Buckets
) -> int:
    """Prefect's ``reactive_evaluation`` for one trigger and event, on the batch's buckets."""
    name = event.event
    expect_only = trigger.expects(name) and not trigger.starts_after(name)
    # Held for the windows that open later over it; one held already was counted when it was.
    if (
        expect_only
        and trigger.holds_expect_events
        and not _hold_expect_event(workspace_id, trigger, key, event)
    ):
        return 0
    marker = buckets.get(trigger, key)
    if marker is not None and marker.awaiting_resolution:
        if trigger.starts_after(name) and event.occurred >= marker.start:
            # The key starts again (a retried flow run): a new window, which resolves the trigger
            # if it is satisfied, and fires it again if not.
            buckets.delete(marker)
            buckets.ensure(workspace_id, trigger, key, start=event.occurred,
                           end=_later(event.occurred, trigger.trigger.within), event=event,
                           count=-1 if trigger.expects(name) else 0, triggered_at=marker.triggered_at)  # fmt: skip
        elif trigger.expects(name) and event.occurred >= marker.start:
            # The expected event, after all: the trigger that fired for this key resolves.
            marker.last_event = event_to_wire(event)
            buckets.delete(marker)
            return _resolve(trigger, marker)
        else:
            return 0
    elif trigger.trigger.after and trigger.starts_after(name):
        # An event in both `after` and `expect` opens the bucket at -1, so it counts to 0.
        buckets.ensure(workspace_id, trigger, key, start=event.occurred, end=_later(event.occurred, trigger.trigger.within),
                       event=event, count=-1 if trigger.expects(name) else 0)  # fmt: skip
    elif not trigger.trigger.after and trigger.expects(name):
        buckets.ensure(workspace_id, trigger, key, start=_earlier(event.occurred, PRECEDING_EVENT_LOOKBACK),
                       end=_later(event.occurred, trigger.trigger.within), event=event, count=0)  # fmt: skip
    if not trigger.expects(name):
        return 0
    bucket = buckets.get(trigger, key)
    if bucket is None:
        return 0
    return _evaluate(trigger, bucket, event.occurred, event, buckets)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _slot_start(occurred: dt.datetime, width: dt.timedelta) -> dt.datetime:
    """The start of the ``width``-wide slot, aligned to the epoch, that holds ``occurred``."""
    slots = (occurred - _EPOCH) // width
    try:
        return _EPOCH + slots * width
    except OverflowError:
        return _EARLIEST if slots < 0 else _LATEST


def _held_for(trigger: LoadedTrigger, key: str):
    return AutomationHeldEvent.objects.filter(
        automation_id=trigger.automation_id, trigger_id=trigger.trigger.id, bucketing_key=key
    )


def _held_in_window(trigger: LoadedTrigger, key: str, start: dt.datetime, end: dt.datetime) -> int:
    """The events held for this trigger and key that occurred in ``[start, end)``."""
    return _held_for(trigger, key).filter(occurred__gte=start, occurred__lt=end).count()


def _hold_expect_event(workspace_id: uuid.UUID, trigger: LoadedTrigger, key: str, event: Event) -> bool:
    """Prefect's ``hold_expect_event`` and ``hold_event``, under the key's lock: hold the event for
    the windows that open later over it, and drop what no window needs. False when it was held
    already (so it was counted already)."""
    held = _held_for(trigger, key)
    if held.filter(event_id=event.id).exists():
        return False
    AutomationHeldEvent.objects.create(
        workspace_id=workspace_id,
        automation_id=trigger.automation_id,
        trigger_id=trigger.trigger.id,
        bucketing_key=key,
        event_id=event.id,
        occurred=event.occurred,
    )
    within = trigger.trigger.within
    # The horizon runs from the newest held event (a backfill, held newest first, still trims).
    newest = held.aggregate(newest=Max("occurred"))["newest"] or event.occurred
    held.filter(occurred__lt=_earlier(newest, max(HELD_EXPECT_EVENTS_RETENTION, within))).delete()
    if within > dt.timedelta(0):
        # A window spans the end of one `within`-wide slot and the start of the next, so each slot
        # keeps its first and last `threshold` events: a window still counts at least the smaller
        # of the threshold and the events inside it, and a count at the threshold already stops a
        # proactive trigger from firing. Only the new event's slot changed.
        start = _slot_start(event.occurred, within)
        in_slot = held.filter(occurred__gte=start, occurred__lt=_later(start, within))
        threshold = trigger.trigger.threshold
        first = in_slot.order_by("occurred", "event_id").values("id")[:threshold]
        last = in_slot.order_by("-occurred", "-event_id").values("id")[:threshold]
        in_slot.exclude(id__in=first).exclude(id__in=last).delete()
    return True


_Pair = tuple[uuid.UUID, uuid.UUID, str]
#: The first key of the two-key advisory locks on a trigger's bucketing key (the two-key space is
#: apart from the one-key space; this constant keeps it apart from other two-key users).
_BUCKET_LOCK_CLASS = 0x4275636B  # "Buck"


def _pair_lock_key(pair: _Pair) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, pair)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Buckets:
    """The buckets of one evaluation, kept in memory while it runs and written back at its end.

    Every writer of a trigger's bucket for a key (the batch evaluation, the proactive clock)
    first takes a transaction-scoped advisory lock on (automation, trigger, key), all of a
    transaction's in one sorted order, so two processes evaluating the same key wait for each
    other and neither sees the other's half-written state, including a bucket not created yet
    (a row lock cannot hold a row that does not exist). The rows are also read ``FOR UPDATE``,
    so the sweep's deletes wait too."""

    def __init__(self) -> None:
        self.rows: dict[_Pair, AutomationBucket | None] = {}
        self.stored: dict[_Pair, uuid.UUID] = {}
        self.dirty: dict[_Pair, AutomationBucket | None] = {}

    @staticmethod
    def pair(trigger: LoadedTrigger, key: str) -> _Pair:
        return (trigger.automation_id, trigger.trigger.id, key)

    @classmethod
    def lock_and_read(cls, workspace_id: uuid.UUID, wanted: list[tuple[LoadedTrigger, str]]) -> _Buckets:
        buckets = cls()
        pairs = sorted({cls.pair(t, key) for t, key in wanted}, key=_pair_lock_key)
        connection = transaction.get_connection()
        if connection.vendor == "postgresql" and pairs:
            keys = sorted({_pair_lock_key(p) for p in pairs})
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, k) FROM "
                    "(SELECT k FROM unnest(%s::int[]) WITH ORDINALITY AS t(k, o) ORDER BY o) AS s",
                    [_BUCKET_LOCK_CLASS, keys],
                )
        for pair in pairs:
            buckets.rows[pair] = None
        condition = Q()
        for automation_id, trigger_id, key in pairs:
            condition |= Q(automation_id=automation_id, trigger_id=trigger_id, bucketing_key=key)
        if pairs:
            for row in AutomationBucket.objects.select_for_update().filter(condition):
                pair = (row.automation_id, row.trigger_id, row.bucketing_key)
                buckets.rows[pair] = row
                buckets.stored[pair] = row.id
        return buckets

    def get(self, trigger: LoadedTrigger, key: str) -> AutomationBucket | None:
        return self.rows.get(self.pair(trigger, key))

    def ensure(
        self,
        workspace_id,
        trigger: LoadedTrigger,
        key: str,
        *,
        start,
        end,
        event: Event | None,
        count: int,
        triggered_at: dt.datetime | None = None,
    ) -> None:
        """Prefect's ``ensure_bucket``: a window for the key unless one is open."""
        pair = self.pair(trigger, key)
        if self.rows.get(pair) is not None:
            return
        if trigger.holds_expect_events:
            count += _held_in_window(trigger, key, start, end)
        row = AutomationBucket(
            workspace_id=workspace_id,
            automation_id=trigger.automation_id,
            trigger_id=trigger.trigger.id,
            bucketing_key=key,
            start=start,
            end=end,
            count=count,
            last_event=event_to_wire(event) if event is not None else None,
            last_operation="ensure_bucket[insert]",
            proactive=trigger.proactive,
            triggered_at=triggered_at,
        )
        self.rows[pair] = self.dirty[pair] = row

    def save(self, bucket: AutomationBucket) -> None:
        pair = (bucket.automation_id, bucket.trigger_id, bucket.bucketing_key)
        self.rows[pair] = self.dirty[pair] = bucket

    def delete(self, bucket: AutomationBucket) -> None:
        pair = (bucket.automation_id, bucket.trigger_id, bucket.bucketing_key)
        self.rows[pair] = self.dirty[pair] = None

    def write(self) -> None:
        """One DELETE for the windows that closed, one upsert for those opened or changed."""
        gone = [self.stored[p] for p, row in self.dirty.items() if row is None and p in self.stored]
        if gone:
            AutomationBucket.objects.filter(id__in=gone).delete()
        kept = [row for row in self.dirty.values() if row is not None]
        if kept:
            AutomationBucket.objects.bulk_create(
                kept,
                update_conflicts=True,
                unique_fields=["automation", "trigger_id", "bucketing_key"],
                update_fields=[
                    "start", "end", "count", "last_event", "last_operation", "updated", "proactive",
                    "triggered_at", "awaiting_resolution",
                ],
            )  # fmt: skip
        self.dirty.clear()


def _occurred(wire: dict[str, Any] | None) -> dt.datetime | None:
    if not wire or not wire.get("occurred"):
        return None
    return dt.datetime.fromisoformat(str(wire["occurred"]).replace("Z", "+00:00"))


def _evaluate(
    trigger: LoadedTrigger, bucket: AutomationBucket, now: dt.datetime, event: Event | None, buckets: _Buckets
) -> int:
    """Prefect's ``evaluate`` on a locked bucket, for both postures: a reactive trigger fires as soon
    as its window counts ``threshold`` events, a proactive one when a window ends having counted
    fewer. The next window is written into the same row (so a writer waiting on its lock reads it
    next) or the row is deleted."""
    count = 1 if event is not None else 0
    if bucket.awaiting_resolution:
        if event is None and bucket.end <= now:
            buckets.delete(bucket)  # its expected event never came: no longer awaited
        return 0
    if now < bucket.start:
        return 0  # a late event for a window that already fired or closed
    previous_last_event = bucket.last_event
    if count and (trigger.immediate or bucket.start <= now < bucket.end):
        bucket.count += count
        bucket.last_event = event_to_wire(event)
        bucket.last_operation = "increment_bucket"
        buckets.save(bucket)
        count = 0

    ready_to_fire = not trigger.proactive or bucket.end <= now
    meets_threshold = trigger.meets_threshold(bucket.count)
    fired = 0
    triggered_at = bucket.triggered_at
    if ready_to_fire and meets_threshold:
        fired = _fire(trigger, bucket, event)
        if trigger.proactive and not trigger.parents:  # only an automation's own trigger resolves
            triggered_at = timezone.now()
    elif now < bucket.end:
        if (
            event is not None
            and trigger.proactive
            and not meets_threshold
            and trigger.starts_after(event.event)
            and trigger.expects(event.event)
        ):
            # One event both in `after` and `expect` (heartbeats): a window already satisfied
            # starts again at the latest one.
            last_event = event_to_wire(event)
            previous = _occurred(previous_last_event)
            if (
                previous_last_event
                and trigger.expects(previous_last_event.get("event", ""))
                and not trigger.starts_after(previous_last_event.get("event", ""))
                and previous is not None
                and previous >= event.occurred
            ):
                last_event = previous_last_event
            # The new window counts its `expect`-only events (a terminal state racing the last
            # heartbeat) from the held ones, whatever order they were evaluated in.
            start, end = event.occurred, _later(event.occurred, trigger.trigger.within)
            held = (
                _held_in_window(trigger, bucket.bucketing_key, start, end)
                if trigger.holds_expect_events
                else 0
            )
            _restart(buckets, bucket, start=start, end=end, count=held, last_event=last_event,
                     triggered_at=triggered_at)  # fmt: skip
        return fired
    elif trigger.proactive and triggered_at is not None:
        # A window that ended satisfied, after one that fired: the trigger resolves.
        fired += _resolve(trigger, bucket)
        triggered_at = None

    if trigger.trigger.after:
        if fired and triggered_at is not None and trigger.proactive and not trigger.parents:
            # Only another `after` event opens the next window; until then (or until
            # ``RESOLUTION_WAIT``) the fired window awaits its expected event, which resolves it.
            bucket.awaiting_resolution = True
            bucket.triggered_at = triggered_at
            bucket.end = _later(max(now, bucket.end), max(trigger.trigger.within, RESOLUTION_WAIT))
            bucket.count = 0
            bucket.last_operation = "await_resolution"
            buckets.save(bucket)
            return fired
        buckets.delete(bucket)  # only another `after` event opens the next window
        return fired
    if trigger.immediate:
        if fired:
            buckets.delete(bucket)
        return fired
    start = max(bucket.end, now)
    end = _later(start, trigger.trigger.within)
    if not trigger.proactive and count > 0:
        # An event beyond the window it arrived in: it opens the next one and counts there.
        _restart(buckets, bucket, start=start, end=end, count=0, last_event=None)
        return fired + _evaluate(trigger, bucket, now, event, buckets)
    _restart(buckets, bucket, start=start, end=end, count=count, last_event=None, triggered_at=triggered_at)
    return fired


def _restart(
    buckets: _Buckets, bucket: AutomationBucket, *, start, end, count: int, last_event, triggered_at=None
) -> None:
    """Prefect's ``start_new_bucket``, in the locked row (``triggered_at``: a proactive trigger
    that fired for this key and has not resolved since)."""
    bucket.start, bucket.end, bucket.count, bucket.last_event = start, end, count, last_event
    bucket.triggered_at = triggered_at
    bucket.last_operation = "start_new_bucket"
    buckets.save(bucket)


@dataclass
class _Firing:
    """Prefect's ``Firing``: a trigger of the tree that fired."""

    trigger_id: uuid.UUID
    triggered: dt.datetime
    triggering_labels: dict[str, str]
    triggering_event: dict[str, Any] | None
    bucketing_key: str = "[]"
    bucket_start: dt.datetime | None = None
    #: unique per trigger: null for a reactive event firing (its event is), else the window or
    #: the child firings it consumed
    window_key: str | None = None
    #: Prefect's ``trigger_states``: a reactive (or composite) firing triggers and resolves at
    #: once; a proactive one triggers, and resolves later when its condition is met again.
    states: tuple[str, ...] = ("Triggered", "Resolved")
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def _fire(trigger: LoadedTrigger, bucket: AutomationBucket, event: Event | None) -> int:
    triggering_event = event_to_wire(event) if event is not None else bucket.last_event
    labels = dict(zip(sorted(trigger.trigger.for_each), json.loads(bucket.bucketing_key), strict=False))
    firing = _Firing(
        trigger_id=trigger.trigger.id,
        triggered=timezone.now(),
        triggering_labels=labels,
        triggering_event=triggering_event,
        bucketing_key=bucket.bucketing_key,
        bucket_start=bucket.start,
        # A proactive window fires once, whatever its last event; a reactive firing is its event's.
        window_key=f"{bucket.bucketing_key} {bucket.start.isoformat()}" if trigger.proactive else None,
        states=("Triggered",) if trigger.proactive else ("Triggered", "Resolved"),
    )
    return _fire_node(bucket.workspace_id, trigger, 0, firing)


def _resolve(trigger: LoadedTrigger, bucket: AutomationBucket) -> int:
    """A proactive trigger that fired for this key sees a window satisfied again: it resolves
    (``prefect.automation.resolved``, and the ``actions_on_resolve`` run)."""
    labels = dict(zip(sorted(trigger.trigger.for_each), json.loads(bucket.bucketing_key), strict=False))
    firing = _Firing(
        trigger_id=trigger.trigger.id,
        triggered=timezone.now(),
        triggering_labels=labels,
        triggering_event=bucket.last_event,
        bucketing_key=bucket.bucketing_key,
        bucket_start=bucket.start,
        window_key=f"resolved {bucket.bucketing_key} {bucket.start.isoformat()}",
        states=("Resolved",),
    )
    return _fire_node(bucket.workspace_id, trigger, 0, firing)


def _fire_node(workspace_id: uuid.UUID, trigger: LoadedTrigger, level: int, firing: _Firing) -> int:
    """Prefect's ``fire``: a firing of the tree's node at ``level`` (0 the event trigger, then its
    parents) is recorded once; the automation's own trigger acts, a child feeds its parent."""
    top = level == len(trigger.parents)
    reactive_event = firing.window_key is None
    row = AutomationFiring(
        id=firing.id,
        workspace_id=workspace_id,
        automation_id=trigger.automation_id,
        trigger_id=firing.trigger_id,
        bucketing_key=firing.bucketing_key,
        bucket_start=firing.bucket_start or firing.triggered,
        triggered=firing.triggered,
        triggering_labels=firing.triggering_labels,
        triggering_event=firing.triggering_event,
        triggering_event_id=(firing.triggering_event or {}).get("id") if reactive_event else None,
        triggered_event_id=uuid.uuid4(),
        window_key=firing.window_key,
        actions=[],
    )
    if top:
        emitted = [_state_change_event(trigger, row, state) for state in firing.states]
        by_state = dict(zip(firing.states, emitted, strict=True))
        primary = by_state.get("Triggered") or by_state["Resolved"]
        row.triggered_event_id = uuid.UUID(primary["id"])
        # As Prefect's ``act``: `actions` see the firing's event; `actions_on_trigger` and
        # `actions_on_resolve` see the triggered and resolved events as their triggering ones. A
        # firing that only resolves (a proactive trigger, later) runs its `actions_on_resolve`.
        row.actions = [
            {**entry, "event": by_state["Triggered"]} if entry["source"] == "actions_on_trigger" else
            {**entry, "event": by_state["Resolved"]} if entry["source"] == "actions_on_resolve" else entry
            for entry in trigger.actions
            if (entry["source"] == "actions" and "Triggered" in by_state)
            or (entry["source"] == "actions_on_trigger" and "Triggered" in by_state)
            or (entry["source"] == "actions_on_resolve" and "Resolved" in by_state)
        ]  # fmt: skip
        collected = _firings.get()
        if collected is not None:  # written with the rest of its transaction's firings
            collected.add(row, emitted, reactive_event=reactive_event)
            return 1
        with _collecting_firings(workspace_id) as firings:  # a caller that collects none
            firings.add(row, emitted, reactive_event=reactive_event)
            return firings.write()
    # A child's firing feeds its parent only when it is new: written here, in a savepoint.
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        logger.info(
            "Automation %s: trigger %s already fired for this", trigger.automation_id, firing.trigger_id
        )
        return 0
    return _child_fired(workspace_id, trigger, level + 1, firing)


def _arrived(event: dict[str, Any] | None) -> dt.datetime | None:
    """When a triggering event reached the server (its ``received``, else its ``occurred``)."""
    value = (event or {}).get("received") or (event or {}).get("occurred")
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _state_change_event(trigger: LoadedTrigger, row: AutomationFiring, state: str) -> dict[str, Any]:
    """Prefect's ``create_automation_state_change_event`` (Triggered or Resolved)."""
    resource = {
        "prefect.resource.id": f"prefect.automation.{trigger.automation_id}",
        "prefect.resource.name": trigger.automation_name,
    }
    if not trigger.parents:
        resource["prefect.posture"] = trigger.trigger.posture
    triggering_event = row.triggering_event
    related = (
        [{"prefect.resource.id": f"prefect.event.{triggering_event['id']}",
          "prefect.resource.role": "triggering-event"}]
        if triggering_event else []
    )  # fmt: skip
    return {
        "id": str(uuid.uuid4()),
        "occurred": row.triggered.isoformat(),
        "event": f"prefect.automation.{state.lower()}",
        "resource": resource,
        "related": related,
        "payload": {"triggering_labels": row.triggering_labels, "triggering_event": triggering_event},
    }


def _expected_firings(parent: CompoundTrigger | SequenceTrigger) -> int:
    if isinstance(parent, CompoundTrigger):
        if parent.require == "any":
            return 1
        if parent.require == "all":
            return len(parent.triggers)
        return int(parent.require)
    return len(parent.triggers)


def _ready_to_fire(parent: CompoundTrigger | SequenceTrigger, children: list[AutomationChildFiring]) -> bool:
    if isinstance(parent, CompoundTrigger):
        return len(children) >= _expected_firings(parent)
    fired_order = [c.child_trigger_id for c in sorted(children, key=lambda c: c.child_fired)]
    return fired_order == [child.id for child in parent.triggers]


def _child_fired(workspace_id: uuid.UUID, trigger: LoadedTrigger, level: int, child: _Firing) -> int:
    """Prefect's ``evaluate_composite_trigger``: the parent at ``level`` fires when its children's
    latest firings (within its window) meet ``require`` (compound) or came in order (sequence).
    The automation's row is locked while its child firings are read and claimed, so two
    evaluators cannot both see a parent's children complete."""
    parent = trigger.parents[level - 1]
    if _expected_firings(parent) == 1:
        return _fire_node(
            workspace_id, trigger, level,
            _Firing(trigger_id=parent.id, triggered=timezone.now(), triggering_labels={},
                    triggering_event=child.triggering_event, window_key=f"firings {child.id}"),
        )  # fmt: skip
    Automation.objects.select_for_update().filter(id=trigger.automation_id).first()
    rows = AutomationChildFiring.objects.filter(
        automation_id=trigger.automation_id, parent_trigger_id=parent.id
    )
    if parent.within is not None:
        rows.filter(child_fired__lt=_earlier(child.triggered, parent.within)).delete()
    rows.filter(child_trigger_id=child.trigger_id).delete()
    AutomationChildFiring.objects.create(
        workspace_id=workspace_id, automation_id=trigger.automation_id, parent_trigger_id=parent.id,
        child_trigger_id=child.trigger_id, child_firing_id=child.id, child_fired=child.triggered,
        child_firing={"triggering_event": child.triggering_event, "triggering_labels": child.triggering_labels},
    )  # fmt: skip
    children = list(rows.all())
    if not _ready_to_fire(parent, children):
        return 0
    rows.filter(id__in=[c.id for c in children]).delete()
    consumed = " ".join(sorted(str(c.child_firing_id) for c in children))
    return _fire_node(
        workspace_id, trigger, level,
        _Firing(trigger_id=parent.id, triggered=timezone.now(), triggering_labels={},
                triggering_event=child.triggering_event, window_key=f"firings {consumed}"),
    )  # fmt: skip


# --- proactive triggers, on the clock ---------------------------------------------------------------


def proactive_triggers_evaluate(*, now: dt.datetime | None = None) -> int:
    """Prefect's ``evaluate_proactive_triggers``, for every workspace (a sweep across tenants, on
    purpose): a trigger without ``for_each`` gets its window if it has none, and every proactive
    window that has ended is evaluated under its row lock, one transaction each, so two clocks
    (two beat schedulers, or one restarted) fire a window once. Windows live in the database, so
    a restart loses none. ``now`` given is each workspace's events clock; otherwise the clock is
    real time plus the workspace's ``events_clock_offset``. Returns how many firings happened."""
    # Only workspaces with a proactive trigger somewhere in an enabled automation's trigger tree.
    workspace_ids = (
        Automation.objects.unscoped()
        .filter(enabled=True)
        .annotate(trigger_text=Cast("trigger", TextField()))
        .filter(trigger_text__contains='"Proactive"')
        .values_list("workspace_id", flat=True)
        .distinct()
    )
    fired = 0
    for workspace_id in list(workspace_ids):
        try:
            proactive = [t for t in workspace_triggers(workspace_id) if t.proactive]
            if proactive:
                as_of = now or timezone.now() + events_clock_offset(workspace_id)
                fired += _proactive_workspace(workspace_id, proactive, as_of)
        except Exception:  # noqa: BLE001 - one workspace's failure must not stop the others' clocks
            logger.exception("Workspace %s: proactive evaluation failed", workspace_id)
    return fired


def _proactive_workspace(workspace_id: uuid.UUID, proactive: list[LoadedTrigger], now: dt.datetime) -> int:
    fired = 0
    with workspace_scope(workspace_id):
        by_id = {(t.automation_id, t.trigger.id): t for t in proactive}
        unkeyed = [t for t in proactive if not t.trigger.for_each]
        if unkeyed:
            try:
                with transaction.atomic():
                    buckets = _Buckets.lock_and_read(workspace_id, [(t, "[]") for t in unkeyed])
                    for trigger in unkeyed:
                        buckets.ensure(workspace_id, trigger, "[]", start=now,
                                       end=_later(now, trigger.trigger.within), event=None, count=0)  # fmt: skip
                    buckets.write()
            except Exception:  # noqa: BLE001 - the windows that ended are still evaluated
                logger.exception("Workspace %s: proactive windows not opened", workspace_id)
        due = AutomationBucket.objects.filter(
            proactive=True, end__lte=now, automation_id__in={t.automation_id for t in proactive}
        ).values_list("automation_id", "trigger_id", "bucketing_key")
        for automation_id, trigger_id, key in list(due):
            trigger = by_id.get((automation_id, trigger_id))
            if trigger is None:
                continue
            try:
                with transaction.atomic(), _collecting_firings(workspace_id) as firings:
                    buckets = _Buckets.lock_and_read(workspace_id, [(trigger, key)])
                    if trigger.parents:
                        Automation.objects.select_for_update().filter(id=trigger.automation_id).first()
                    bucket = buckets.get(trigger, key)
                    if bucket is not None:
                        _evaluate(trigger, bucket, now, None, buckets)
                    buckets.write()
                    fired += firings.write()
            except Exception:  # noqa: BLE001 - one automation's failure must not stop the others
                logger.exception(
                    "Automation %s trigger %s: proactive evaluation failed", automation_id, trigger_id
                )
    return fired


#: Prefect's ``PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER``: how long a window that ended is kept.
EXPIRED_BUCKET_BUFFER = dt.timedelta(seconds=60)


def automation_buckets_sweep(*, now: dt.datetime | None = None) -> int:
    """Prefect's ``sweep_closed_buckets``: windows that ended more than the buffer ago, in every
    workspace (a sweep across tenants, on purpose). Returns how many were deleted."""
    now = now or timezone.now()
    older_than = now - EXPIRED_BUCKET_BUFFER
    # A proactive window that ended is the clock's to evaluate (and then to move on); the sweep
    # takes it only when its automation no longer exists as it was (trigger changed or disabled).
    deleted, _ = AutomationBucket.objects.unscoped().filter(end__lte=older_than, proactive=False).delete()
    stale = AutomationBucket.objects.unscoped().filter(end__lte=older_than, proactive=True)
    deleted += stale.exclude(automation__enabled=True).delete()[0]
    # Prefect's ``sweep_held_events``: held long enough, unless a window of its key is still open
    # (``within`` has no upper bound, and an `after` event inside that window can roll it back).
    open_window = AutomationBucket.objects.unscoped().filter(
        automation_id=OuterRef("automation_id"),
        trigger_id=OuterRef("trigger_id"),
        bucketing_key=OuterRef("bucketing_key"),
        end__gt=now,
    )
    AutomationHeldEvent.objects.unscoped().filter(updated__lt=now - HELD_EXPECT_EVENTS_RETENTION).exclude(
        Exists(open_window)
    ).delete()
    AutomationDeferredEvaluation.objects.unscoped().filter(
        created__lt=now - DEFERRED_EVALUATION_RETENTION
    ).delete()
    return deleted


#: A firing whose actions have not all run this long after it fired is handed off again (its task
#: was never published, the broker being down at the commit, or was lost); each action still runs
#: once (``automation_firing_act`` claims it). Only firings of the last ``STALLED_FIRING_HORIZON`` are
#: looked at, so one whose actions never record (its automation deleted mid-way) is not sent forever.
STALLED_FIRING_AFTER = dt.timedelta(minutes=2)
STALLED_FIRING_HORIZON = dt.timedelta(hours=1)


def automation_firings_redispatch_stalled(*, now: dt.datetime | None = None) -> int:
    """Hand off again the firings, in every workspace (a sweep across tenants, on purpose), that
    fired between the horizon and ``STALLED_FIRING_AFTER`` ago and have fewer action runs than
    actions. Returns how many were handed off. First, actions still ``running`` past
    ``AUTOMATION_ACTION_TIMEOUT_SECONDS`` are failed with the reason, never run again
    (``automation_action_runs_fail_stalled``)."""
    now = now or timezone.now()
    automation_action_runs_fail_stalled(now=now)
    stalled = (
        AutomationFiring.objects.unscoped()
        .filter(triggered__gte=now - STALLED_FIRING_HORIZON, triggered__lte=now - STALLED_FIRING_AFTER)
        .exclude(actions=[])
        .annotate(runs=Count("action_runs"))
        .values_list("workspace_id", "id", "actions", "runs")
    )
    by_workspace: dict[uuid.UUID, list[uuid.UUID]] = {}
    for workspace_id, firing_id, actions, runs in stalled:
        if runs < len(actions or []):
            by_workspace.setdefault(workspace_id, []).append(firing_id)
    for workspace_id, firing_ids in by_workspace.items():
        logger.warning(
            "automation firings handed off again",
            extra={"workspace_id": str(workspace_id), "firings": len(firing_ids)},
        )
        _dispatch_firings(workspace_id, firing_ids)
    return sum(len(ids) for ids in by_workspace.values())
