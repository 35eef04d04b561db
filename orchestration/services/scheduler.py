"""The scheduler: future runs for every active schedule of every unpaused deployment.

What it creates is what Prefect's scheduler service creates (``services/scheduler.py``,
``models/deployments.py`` ``_generate_scheduled_flow_runs``): per schedule, dates from now on,
stopping once there are at least ``SCHEDULER_MIN_RUNS`` and the last is at least
``SCHEDULER_MIN_SCHEDULED_HOURS`` ahead, never more than ``SCHEDULER_MAX_RUNS`` (or the schedule's
``max_scheduled_runs``) and nothing beyond ``SCHEDULER_MAX_SCHEDULED_DAYS``. Each run is SCHEDULED at
its date, ``auto_scheduled``, tagged ``auto-scheduled`` plus the deployment's tags, with the
deployment's parameters overlaid by the schedule's, its labels, version and work queue, and the
idempotency key ``scheduled <deployment id> <schedule id> <ISO date>``. A schedule is only looked at
when it has fewer than the minimum of future runs or its last one is too close: Prefect's query,
decided in SQL, so the tick that runs forever costs little when nothing is due.

How it writes, so that it is fast and safe to run twice at once:

* one cross-tenant read per batch of schedules that need runs (``.unscoped()``, deliberately), then
  the writes of each workspace inside that workspace's scope;
* runs are bulk-inserted with ``ON CONFLICT DO NOTHING`` on the idempotency key, so a run another
  scheduler (or an earlier tick) already made is skipped by the database, and rows are inserted in
  one global order so concurrent schedulers cannot deadlock each other;
* each run is inserted pointing at a pre-allocated state id; the state rows are then inserted for
  the runs that made it in (the foreign keys are checked at commit). The state row and the run's
  state columns are exactly what ``set_flow_run_state(force=True)`` writes for a new run entering
  SCHEDULED (type, name, timestamp, expected and next scheduled start time, details naming the run
  and its scheduled time). Like Prefect's bulk path, no ``prefect.flow-run.Scheduled`` event is
  emitted for auto-scheduled runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    TextField,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Replace
from django.utils import timezone

from billing.selectors import new_work_blocked
from orchestration.models import DeploymentSchedule, FlowRun, FlowRunState
from orchestration.models.states import StateType
from orchestration.names import generate_run_name
from orchestration.schemas.core import FlowRunPolicy
from orchestration.schemas.schedules import schedule_class_name, schedule_dates
from orchestration.schemas.states import StateDetails
from orchestration.selectors.work_pools import poll_answers_changed
from tenants.scoping import workspace_scope

logger = logging.getLogger(__name__)

#: Schedules read per batch.
SCHEDULE_BATCH_SIZE = 1000
#: Runs per INSERT statement (any database) and per COPY (PostgreSQL).
INSERT_BATCH_SIZE = 1000
POSTGRES_CHUNK_SIZE = 20_000
STAGING_TABLE = "scheduler_flow_run_staging"
# PostgreSQL refuses ``COPY … FROM`` into a table under row-level security: the state rows are
# staged too, and go in with one ``INSERT … SELECT``.
STATE_STAGING_TABLE = "scheduler_flow_run_state_staging"
SCHEDULED_MESSAGE = "Flow run scheduled"


class _JsonText(str):
    """A JSON column value already serialised (shared by every run of a schedule, so it is
    serialised once)."""


def _json(value: Any) -> _JsonText:
    return _JsonText(json.dumps(value))


_POLICY = _json(FlowRunPolicy().model_dump(mode="json"))
_EMPTY_OBJECT = _json({})
# The state details ``set_flow_run_state`` writes for a new SCHEDULED run: every key of
# ``StateDetails``, with the run and its scheduled time filled in per run.
_DETAILS_TEMPLATE = (
    json.dumps(
        StateDetails(
            flow_run_id=uuid.UUID(int=0), scheduled_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        ).model_dump(mode="json")
    )
    .replace(str(uuid.UUID(int=0)), "@RUN@")
    .replace("2000-01-01T00:00:00Z", "@TIME@")
)


def _utc_text(value: dt.datetime) -> str:
    """pydantic's JSON form of a UTC datetime (``…Z``)."""
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class SchedulerSettings:
    min_runs: int
    max_runs: int
    min_time: dt.timedelta
    max_time: dt.timedelta

    @classmethod
    def from_settings(cls) -> SchedulerSettings:
        return cls(
            min_runs=settings.SCHEDULER_MIN_RUNS,
            max_runs=settings.SCHEDULER_MAX_RUNS,
            min_time=dt.timedelta(hours=settings.SCHEDULER_MIN_SCHEDULED_HOURS),
            max_time=dt.timedelta(days=settings.SCHEDULER_MAX_SCHEDULED_DAYS),
        )


_SCHEDULE_FIELDS = (
    "id",
    "deployment_id",
    "workspace_id",
    "schedule",
    "parameters",
    "slug",
    "max_scheduled_runs",
    "deployment__flow_id",
    "deployment__version",
    "deployment__parameters",
    "deployment__tags",
    "deployment__labels",
    "deployment__infrastructure_document_id",
    "deployment__work_queue_name",
    "deployment__work_queue_id",
    "deployment__work_queue__work_pool_id",
    "deployment__work_queue__work_pool__name",
)


def scheduler_tick(*, now: dt.datetime | None = None, config: SchedulerSettings | None = None) -> int:
    """Create the runs every active schedule needs now; returns how many were created. Which
    schedules need runs is decided in SQL (``_schedules_needing_runs``), so an idle tick reads
    nothing but the schedules' index and each one's few future runs."""
    config = config or SchedulerSettings.from_settings()
    created = 0
    last_id: uuid.UUID | None = None
    while True:
        now_ = now or timezone.now()
        schedules = _schedules_needing_runs(now=now_, config=config, after=last_id)
        if not schedules:
            break
        created += _insert(_runs_for(schedules, now=now_, config=config))
        if len(schedules) < SCHEDULE_BATCH_SIZE:
            break
        last_id = schedules[-1]["id"]
    if created:
        logger.info("Scheduled %d runs.", created)
    return created


def deployment_runs_schedule(
    *,
    deployment_id: uuid.UUID,
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    min_time: dt.timedelta | None = None,
    min_runs: int | None = None,
    max_runs: int | None = None,
    config: SchedulerSettings | None = None,
) -> int:
    """Prefect's ``models.deployments.schedule_runs`` (``POST deployments/{id}/schedule``): runs for
    each active schedule of one deployment, paused or not, from ``start_time`` (now by default; in
    the past for a backfill) to ``end_time`` (default ``start_time`` plus the scheduler's horizon),
    at most ``max_runs`` per schedule, stopping once there are ``min_runs`` and the last is at least
    ``min_time`` after ``start_time`` (the scheduler's settings fill what is not given; a schedule's
    ``max_scheduled_runs`` does not apply, as in Prefect). The runs are the scheduler's own, with
    its idempotency keys, so scheduling twice creates nothing new. The caller is in the
    deployment's workspace scope; returns how many runs were created."""
    config = config or SchedulerSettings.from_settings()
    now = timezone.now()
    start = start_time or now
    end = end_time or start + config.max_time
    min_runs = config.min_runs if min_runs is None else min_runs
    max_runs = config.max_runs if max_runs is None else max_runs
    min_time = config.min_time if min_time is None else min_time
    runs: list[_Run] = []
    schedules = (
        DeploymentSchedule.objects.filter(deployment_id=deployment_id, active=True)
        .order_by("id")
        .values(*_SCHEDULE_FIELDS)
    )
    for schedule in schedules:
        dates: list[dt.datetime] = []
        for date in schedule_dates(schedule["schedule"], start=start, end=end, n=max_runs):
            dates.append(date)
            if len(dates) >= min_runs and date >= start + min_time:
                break
        runs.extend(_build(schedule, dates, now=now))
    return _insert(runs)


# --- what to create -----------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _id_chunk_size() -> int:
    return min(connection.features.max_query_params or 10_000, 10_000) - 10


def _schedule_key(expression) -> Replace:
    """A schedule id as text without dashes: SQLite stores a UUID as 32 hex digits, a run's
    ``created_by`` names its schedule in the dashed form."""
    return Replace(expression, Value("-"), Value(""), output_field=TextField())


#: The idle tick's query, compiled once per process and settings (PostgreSQL): Django builds its
#: nested subqueries in about 8 ms of Python, where PostgreSQL answers it in 3.
_COMPILED: dict[tuple, tuple] = {}
#: The ``now`` the cached query is compiled for; every time in it is ``now`` plus or minus a fixed
#: span (the horizon, the billing grace), so a tick shifts each by ``now - _COMPILED_AT``.
_COMPILED_AT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _schedules_needing_runs(
    *, now: dt.datetime, config: SchedulerSettings, after: uuid.UUID | None
) -> list[dict[str, Any]]:
    """``_schedules_query``'s rows. The first batch on PostgreSQL runs its SQL as compiled once
    (the values converted by the same compiler); a later batch, or SQLite (whose compiled times
    are text), builds the query again."""
    if after is not None or connection.vendor != "postgresql":
        return list(_schedules_query(now=now, config=config, after=after))
    key = (config.min_runs, config.min_time, settings.BILLING_GRACE_DAYS, SCHEDULE_BATCH_SIZE)
    compiled = _COMPILED.get(key)
    if compiled is None:
        queryset = _schedules_query(now=_COMPILED_AT, config=config, after=None)
        compiler = queryset.query.get_compiler(queryset.db)
        sql, params = compiler.as_sql()
        query = queryset.query
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        compiled = _COMPILED[key] = (compiler, sql, tuple(params), names)
    compiler, sql, params, names = compiled
    shift = now - _COMPILED_AT
    with connection.cursor() as cursor:
        cursor.execute(sql, [p + shift if isinstance(p, dt.datetime) else p for p in params])
        rows = cursor.fetchall()
    return [dict(zip(names, row, strict=True)) for row in compiler.results_iter(results=[rows])]


def _schedules_query(*, now: dt.datetime, config: SchedulerSettings, after: uuid.UUID | None):
    """The next batch (by id, after ``after``) of active schedules of unpaused deployments that
    have fewer future auto-scheduled runs than they want (``SCHEDULER_MIN_RUNS``, or the
    schedule's ``max_scheduled_runs`` if lower) or none at least ``SCHEDULER_MIN_SCHEDULED_HOURS``
    ahead: Prefect's scheduler query, per schedule (a run belongs to the schedule its
    ``created_by`` names).

    The schedules that are fine are found in one pass: the future auto-scheduled runs (the partial
    index ``flow_run_deployment_scheduled``) grouped by schedule, kept when there are enough and
    the last is far enough ahead; the database hashes that set once and a schedule needs runs when
    it is not in it (``NOT IN``), so an idle tick costs one scan of the future runs, not a lookup
    per schedule. Only a schedule capped below the minimum (``max_scheduled_runs``) is counted
    on its own.

    The scheduler serves every tenant: this read deliberately crosses workspaces
    (``.unscoped()``); the writes happen inside each workspace's own scope."""
    horizon = now + config.min_time
    future = (
        FlowRun.objects.unscoped()
        .filter(auto_scheduled=True, state_type=StateType.SCHEDULED, next_scheduled_start_time__gte=now)
        .annotate(schedule_key=_schedule_key(KeyTextTransform("id", "created_by")))
        .filter(schedule_key__isnull=False)
    )
    satisfied = (
        future.order_by()
        .values("schedule_key")
        .annotate(n=Count("id"), last=Max("next_scheduled_start_time"))
        .filter(n__gte=config.min_runs, last__gte=horizon)
        .values("schedule_key")
    )
    own = future.filter(
        deployment_id=OuterRef("deployment_id"),
        schedule_key=_schedule_key(Cast(OuterRef("id"), TextField())),
    )
    counted = own.values("schedule_key").annotate(n=Count("id")).values("n")
    # IS NOT NULL first: on a NULL cap the test is false, not unknown, so the database stops there
    # instead of counting that schedule's runs.
    low_cap = Q(max_scheduled_runs__isnull=False) & Q(
        max_scheduled_runs__gt=0, max_scheduled_runs__lt=config.min_runs
    )
    schedules = (
        DeploymentSchedule.objects.unscoped()
        .filter(active=True, deployment__paused=False)
        .annotate(
            schedule_key=_schedule_key(Cast("id", TextField())),
            future_runs=Coalesce(Subquery(counted, output_field=IntegerField()), Value(0)),
        )
        .filter(
            (~low_cap & ~Q(schedule_key__in=Subquery(satisfied)))
            | (
                low_cap
                & (
                    Q(future_runs__lt=F("max_scheduled_runs"))
                    | ~Exists(own.filter(next_scheduled_start_time__gte=horizon))
                )
            )
        )
    )
    # Accounts whose payment is overdue past its grace start no new work: their schedules wait (the
    # runs already scheduled still execute) until they pay.
    schedules = schedules.exclude(new_work_blocked(prefix="workspace__account__", now=now))
    if after is not None:
        schedules = schedules.filter(id__gt=after)
    return schedules.order_by("id").values(*_SCHEDULE_FIELDS)[:SCHEDULE_BATCH_SIZE]


def _dates(
    schedule: dict[str, Any],
    *,
    now: dt.datetime,
    config: SchedulerSettings,
    memo: dict[str, list[dt.datetime]] | None = None,
) -> list[dt.datetime]:
    """The dates to create runs for. Schedules are often shared ("0 9 * * *", hourly), so within
    one batch the dates of an identical schedule and cap are computed once (``memo``)."""
    if memo is not None:
        key = json.dumps([schedule["schedule"], schedule["max_scheduled_runs"]], sort_keys=True)
        if key not in memo:
            memo[key] = _dates(schedule, now=now, config=config)
        return memo[key]
    cap = config.max_runs
    if schedule["max_scheduled_runs"]:
        cap = min(cap, schedule["max_scheduled_runs"])
    dates: list[dt.datetime] = []
    horizon = now + config.min_time
    for date in schedule_dates(schedule["schedule"], start=now, end=now + config.max_time, n=cap):
        dates.append(date)
        if len(dates) >= config.min_runs and date >= horizon:
            break
    return dates


@dataclass
class _Run:
    """One run to create: its columns and its first state's columns (attribute names)."""

    workspace_id: uuid.UUID
    sort_key: str  # the idempotency key: the order every scheduler inserts in
    run: dict[str, Any]
    state: dict[str, Any]


def _runs_for(
    schedules: Sequence[dict[str, Any]], *, now: dt.datetime, config: SchedulerSettings
) -> list[_Run]:
    runs: list[_Run] = []
    memo: dict[str, list[dt.datetime]] = {}
    for schedule in schedules:
        try:
            dates = _dates(schedule, now=now, config=config, memo=memo)
        except Exception:
            # One broken schedule must not stop every other tenant's scheduling.
            logger.exception(
                "Error scheduling deployment %s (schedule %s)", schedule["deployment_id"], schedule["id"]
            )
            continue
        runs.extend(_build(schedule, dates, now=now))
    return runs


def _build(schedule: dict[str, Any], dates: list[dt.datetime], *, now: dt.datetime) -> Iterable[_Run]:
    deployment_id = schedule["deployment_id"]
    workspace_id = schedule["workspace_id"]
    # Shared by every run of the schedule (the same objects, serialised once per insert).
    common = {
        "workspace_id": workspace_id,
        "flow_id": schedule["deployment__flow_id"],
        "flow_version": None,
        "parameters": _json({**(schedule["deployment__parameters"] or {}), **(schedule["parameters"] or {})}),
        "context": _EMPTY_OBJECT,
        "parent_task_run_id": None,
        "auto_scheduled": True,
        "infrastructure_document_id": schedule["deployment__infrastructure_document_id"],
        "infrastructure_pid": None,
        "created_by": _json(
            {
                "id": str(schedule["id"]),
                "type": "SCHEDULE",
                "display_value": schedule["slug"] or schedule_class_name(schedule["schedule"]),
            }
        ),
        "job_variables": _EMPTY_OBJECT,
        "deployment_id": deployment_id,
        "deployment_version": schedule["deployment__version"],
        "work_queue_id": schedule["deployment__work_queue_id"],
        "work_queue_name": schedule["deployment__work_queue_name"],
        "work_pool_id": schedule["deployment__work_queue__work_pool_id"],
        "work_pool_name": schedule["deployment__work_queue__work_pool__name"],
        "state_type": StateType.SCHEDULED.value,
        "state_name": "Scheduled",
        "state_timestamp": now,
        "run_count": 0,
        "start_time": None,
        "end_time": None,
        "total_run_time": 0.0,
        "empirical_policy": _POLICY,
        "tags": _json(["auto-scheduled", *(schedule["deployment__tags"] or [])]),
        "labels": _json(
            {
                **(schedule["deployment__labels"] or {}),
                "prefect.flow.id": str(schedule["deployment__flow_id"]),
                "prefect.deployment.id": str(deployment_id),
            }
        ),
        "created": now,
        "updated": now,
    }
    key_prefix = f"scheduled {deployment_id} {schedule['id']} "
    for date in dates:
        run_id, state_id = uuid.uuid4(), uuid.uuid4()
        scheduled_time = date.astimezone(dt.UTC)
        run = {
            **common,
            "id": run_id,
            "state_id": state_id,
            "name": generate_run_name(),
            "idempotency_key": key_prefix + date.isoformat(),
            "expected_start_time": scheduled_time,
            "next_scheduled_start_time": scheduled_time,
        }
        state = {
            "id": state_id,
            "workspace_id": workspace_id,
            "flow_run_id": run_id,
            "type": StateType.SCHEDULED.value,
            "name": "Scheduled",
            "timestamp": now,
            "message": SCHEDULED_MESSAGE,
            "data": None,
            "state_details": _JsonText(
                _DETAILS_TEMPLATE.replace("@RUN@", str(run_id)).replace("@TIME@", _utc_text(scheduled_time))
            ),
            "created": now,
        }
        yield _Run(workspace_id, run["idempotency_key"], run, state)


# --- writing ------------------------------------------------------------------------------------------


def _insert(runs: list[_Run]) -> int:
    by_workspace: dict[uuid.UUID, list[_Run]] = defaultdict(list)
    for item in runs:
        by_workspace[item.workspace_id].append(item)
    created = 0
    chunk_size = (
        POSTGRES_CHUNK_SIZE if connection.vendor == "postgresql" else min(INSERT_BATCH_SIZE, _id_chunk_size())
    )
    for workspace_id in sorted(by_workspace, key=str):
        # One order for every scheduler: concurrent inserts of the same keys queue up, never cycle.
        items = sorted(by_workspace[workspace_id], key=lambda item: item.sort_key)
        with workspace_scope(workspace_id) as scope:
            for chunk in _chunks(items, chunk_size):
                assert all(item.workspace_id == scope for item in chunk)
                created += _insert_chunk(workspace_id, chunk)
    if created:
        poll_answers_changed()
    return created


def _insert_chunk(workspace_id: uuid.UUID, chunk: Sequence[_Run], attempts: int = 3) -> int:
    write = _write_postgres if connection.vendor == "postgresql" else _write_orm
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return write(chunk)
        except OperationalError:
            # A deadlock or serialisation failure with another writer: the chunk is idempotent.
            if attempt == attempts - 1:
                raise
            logger.warning("Retrying a scheduler insert in workspace %s", workspace_id, exc_info=True)
            time.sleep(0.05 * (attempt + 1))
    return 0


def _write_orm(chunk: Sequence[_Run]) -> int:
    """Any database: ``INSERT … ON CONFLICT DO NOTHING`` through the ORM, then the state rows of
    the runs that went in."""
    FlowRun.objects.bulk_create([FlowRun(**_objects(item.run)) for item in chunk], ignore_conflicts=True)
    inserted = set(
        FlowRun.objects.filter(id__in=[item.run["id"] for item in chunk]).values_list("id", flat=True)
    )
    states = [FlowRunState(**_objects(item.state)) for item in chunk if item.run["id"] in inserted]
    if states:
        FlowRunState.objects.bulk_create(states)
    return len(states)


def _objects(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(value) if isinstance(value, _JsonText) else value for key, value in row.items()}


def _columns(model) -> list[tuple[str, str, bool]]:
    """(attribute, column, is JSON) of each concrete field."""
    return [(f.attname, f.column, f.get_internal_type() == "JSONField") for f in model._meta.concrete_fields]


def _copy_rows(
    cursor, table: str, columns: list[tuple[str, str, bool]], rows: Iterable[dict[str, Any]]
) -> None:
    names = ", ".join(connection.ops.quote_name(column) for _, column, _ in columns)
    attnames = [attname for attname, _, _ in columns]
    json_columns = [index for index, (_, _, is_json) in enumerate(columns) if is_json]
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            values = [row[attname] for attname in attnames]
            for index in json_columns:
                value = values[index]
                if value is not None and not isinstance(value, _JsonText):
                    values[index] = json.dumps(value)
            copy.write_row(values)


def _write_postgres(chunk: Sequence[_Run]) -> int:
    """PostgreSQL: ``COPY`` the runs into a temporary table, ``INSERT … SELECT … ON CONFLICT DO
    NOTHING RETURNING id`` in key order, then the state rows of the runs that went in the same way
    (``COPY`` into a temporary table and ``INSERT … SELECT``: the tables are under row-level
    security, which ``COPY … FROM`` refuses). No per-row SQL."""
    runs_table = connection.ops.quote_name(FlowRun._meta.db_table)
    states_table = connection.ops.quote_name(FlowRunState._meta.db_table)
    run_columns, state_columns = _columns(FlowRun), _columns(FlowRunState)
    names = ", ".join(connection.ops.quote_name(column) for _, column, _ in run_columns)
    state_names = ", ".join(connection.ops.quote_name(column) for _, column, _ in state_columns)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        # Losing the last chunk in a server crash only means the next tick creates it again.
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (LIKE {runs_table} INCLUDING DEFAULTS)"
        )
        cursor.execute(f"TRUNCATE {STAGING_TABLE}")
        _copy_rows(cursor, STAGING_TABLE, run_columns, (item.run for item in chunk))
        cursor.execute(
            f"INSERT INTO {runs_table} ({names}) SELECT {names} FROM {STAGING_TABLE} "  # noqa: S608 - names from the model
            "ORDER BY idempotency_key ON CONFLICT DO NOTHING RETURNING id"
        )
        inserted = {row[0] for row in cursor.fetchall()}
        if inserted:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STATE_STAGING_TABLE} (LIKE {states_table} INCLUDING DEFAULTS)"
            )
            cursor.execute(f"TRUNCATE {STATE_STAGING_TABLE}")
            _copy_rows(
                cursor,
                STATE_STAGING_TABLE,
                state_columns,
                (item.state for item in chunk if item.run["id"] in inserted),
            )
            cursor.execute(
                f"INSERT INTO {states_table} ({state_names}) SELECT {state_names} FROM {STATE_STAGING_TABLE}"  # noqa: S608 - names from the model
            )
    return len(inserted)


__all__ = ["SchedulerSettings", "deployment_runs_schedule", "scheduler_tick"]
