"""The scheduler: how many runs it creates and what they look like, idempotency (twice in a row
and two schedulers at once on PostgreSQL), and that its bulk path writes what
``set_flow_run_state`` writes."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone
from prefect.client.schemas.objects import FlowRun as ClientFlowRun

from orchestration.api.flow_runs.wire import flow_run_to_wire
from orchestration.models import Deployment, DeploymentSchedule, Event, Flow, FlowRun, FlowRunState
from orchestration.schemas.deployments import DeploymentScheduleUpdate
from orchestration.schemas.states import StateCreate, StateDetails
from orchestration.services import scheduler
from orchestration.services.deployments import deployment_schedule_update
from orchestration.services.orchestration import set_flow_run_state
from orchestration.services.scheduler import SchedulerSettings, _schedules_needing_runs, scheduler_tick
from tenants.scoping import workspace_scope
from tests.conftest import make_tenant

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 5, 10, 15, tzinfo=UTC)
DEFAULTS = SchedulerSettings(
    min_runs=3, max_runs=100, min_time=dt.timedelta(hours=1), max_time=dt.timedelta(days=100)
)


def _deployment(workspace_id, *schedules, paused=False, name="d", flow=None, **fields):
    with workspace_scope(workspace_id):
        flow = flow or Flow.objects.get_or_create(workspace_id=workspace_id, name="etl")[0]
        deployment = Deployment.objects.create(
            workspace_id=workspace_id, flow=flow, name=name, paused=paused, **fields
        )
        for schedule in schedules:
            DeploymentSchedule.objects.create(workspace_id=workspace_id, deployment=deployment, **schedule)
    return deployment


def _every(seconds, **extra):
    return {
        "schedule": {"interval": seconds, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"},
        **extra,
    }


def _cron(expression, **extra):
    return {"schedule": {"cron": expression, "timezone": "UTC", "day_or": True}, **extra}


def _runs(workspace_id, **lookup):
    with workspace_scope(workspace_id):
        return list(FlowRun.objects.filter(**lookup).select_related("state").order_by("expected_start_time"))


@pytest.mark.django_db
class TestCounts:
    @pytest.mark.parametrize(
        ("schedule", "expected"),
        [
            (_every(3600), 3),  # at least three...
            (_every(300), 13),  # ...and at least an hour ahead: 10:20 … 11:20
            (_cron("* * * * *"), 61),
            (_every(86400), 3),
            (_cron("0 0 1 * *"), 3),  # monthly: three within the hundred days
            (_cron("0 0 1 1 *"), 0),  # yearly: the next is beyond a hundred days
            (_every(3600, max_scheduled_runs=2), 2),
        ],
    )
    def test_bounded_like_prefect(self, tenant, schedule, expected):
        deployment = _deployment(tenant.workspace.id, schedule)
        assert scheduler_tick(now=NOW, config=DEFAULTS) == expected
        runs = _runs(tenant.workspace.id, deployment_id=deployment.id)
        assert len(runs) == expected
        assert all(run.expected_start_time >= NOW for run in runs)
        assert all(run.expected_start_time <= NOW + dt.timedelta(days=100) for run in runs)

    def test_max_runs_caps_a_busy_schedule(self, tenant):
        _deployment(tenant.workspace.id, _cron("* * * * *"))
        config = SchedulerSettings(
            min_runs=3, max_runs=100, min_time=dt.timedelta(hours=5), max_time=dt.timedelta(days=1)
        )
        assert scheduler_tick(now=NOW, config=config) == 100

    def test_settings_are_the_defaults(self, tenant):
        _deployment(tenant.workspace.id, _every(60))
        with override_settings(SCHEDULER_MIN_RUNS=2, SCHEDULER_MAX_RUNS=5, SCHEDULER_MIN_SCHEDULED_HOURS=1):
            assert scheduler_tick(now=NOW) == 5

    def test_paused_deployments_and_inactive_schedules_get_nothing(self, tenant):
        _deployment(tenant.workspace.id, _every(3600), paused=True, name="paused")
        _deployment(tenant.workspace.id, _every(3600, active=False), name="inactive")
        _deployment(tenant.workspace.id, name="unscheduled")
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 0

    def test_every_schedule_of_a_deployment(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600, slug="hourly"), _cron("0 12 * * *"))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 6
        by_schedule = {
            run.created_by["display_value"] for run in _runs(tenant.workspace.id, deployment_id=deployment.id)
        }
        assert by_schedule == {"hourly", "CronSchedule"}


@pytest.mark.django_db
class TestIdempotency:
    def test_a_second_tick_creates_nothing(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600), _cron("*/10 * * * *"))
        first = scheduler_tick(now=NOW, config=DEFAULTS)
        assert first > 0
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 0
        assert scheduler_tick(now=NOW + dt.timedelta(seconds=30), config=DEFAULTS) == 0
        runs = _runs(tenant.workspace.id, deployment_id=deployment.id)
        assert len(runs) == first == len({run.idempotency_key for run in runs})
        with workspace_scope(tenant.workspace.id):
            assert FlowRunState.objects.count() == first

    def test_later_ticks_top_up(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 3  # 11:00, 12:00, 13:00
        assert scheduler_tick(now=NOW + dt.timedelta(hours=2), config=DEFAULTS) == 2  # 14:00, 15:00
        hours = [
            run.expected_start_time.hour for run in _runs(tenant.workspace.id, deployment_id=deployment.id)
        ]
        assert hours == [11, 12, 13, 14, 15]

    def test_a_run_the_scheduler_made_is_not_made_again_after_it_started(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600))
        scheduler_tick(now=NOW, config=DEFAULTS)
        first = _runs(tenant.workspace.id, deployment_id=deployment.id)[0]
        with workspace_scope(tenant.workspace.id):
            set_flow_run_state(flow_run_id=first.id, state=StateCreate(type="PENDING"), force=True)
        # The same three dates come out again: the started one is not scheduled twice.
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 0
        assert len(_runs(tenant.workspace.id, deployment_id=deployment.id)) == 3

    def test_one_broken_schedule_does_not_stop_the_others(self, tenant):
        _deployment(
            tenant.workspace.id, {"schedule": {"cron": "not a cron", "timezone": "UTC"}}, name="broken"
        )
        good = _deployment(tenant.workspace.id, _every(3600), name="good")
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 3
        assert len(_runs(tenant.workspace.id, deployment_id=good.id)) == 3


@pytest.mark.django_db
class TestWhatRunsLookLike:
    def test_fields_from_the_deployment_and_schedule(self, tenant):
        from orchestration.services.work_pools import work_pool_create

        with workspace_scope(tenant.workspace.id):
            pool = work_pool_create(name="pool", type="process")
            queue = pool.default_queue
        deployment = _deployment(
            tenant.workspace.id,
            _every(3600, parameters={"b": 2, "c": 3}, slug="hourly"),
            parameters={"a": 1, "b": 1},
            tags=["x"],
            labels={"team": "data"},
            version="v7",
            work_queue=queue,
            work_queue_name=queue.name,
        )
        scheduler_tick(now=NOW, config=DEFAULTS)
        run = _runs(tenant.workspace.id, deployment_id=deployment.id)[0]
        schedule = DeploymentSchedule.objects.for_workspace(tenant.workspace.id).get()
        assert run.parameters == {"a": 1, "b": 2, "c": 3}
        assert run.tags == ["auto-scheduled", "x"]
        assert run.labels == {
            "team": "data",
            "prefect.flow.id": str(deployment.flow_id),
            "prefect.deployment.id": str(deployment.id),
        }
        assert run.auto_scheduled is True and run.deployment_version == "v7"
        assert (run.work_queue_id, run.work_queue_name, run.work_pool_id, run.work_pool_name) == (
            queue.id,
            "default",
            pool.id,
            "pool",
        )
        assert run.created_by == {"id": str(schedule.id), "type": "SCHEDULE", "display_value": "hourly"}
        assert run.idempotency_key == f"scheduled {deployment.id} {schedule.id} 2026-01-05T11:00:00+00:00"
        assert run.workspace_id == tenant.workspace.id and run.state.workspace_id == tenant.workspace.id
        ClientFlowRun.model_validate(flow_run_to_wire(run))

    def test_the_bulk_path_writes_what_set_flow_run_state_writes(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600))
        scheduler_tick(now=NOW, config=DEFAULTS)
        bulk = _runs(tenant.workspace.id, deployment_id=deployment.id)[0]
        when = bulk.expected_start_time
        with workspace_scope(tenant.workspace.id):
            single = FlowRun.objects.create(
                workspace_id=tenant.workspace.id, flow_id=deployment.flow_id, name="x"
            )
            set_flow_run_state(
                flow_run_id=single.id,
                state=StateCreate(
                    type="SCHEDULED",
                    name="Scheduled",
                    message="Flow run scheduled",
                    state_details=StateDetails(scheduled_time=when),
                ),
                force=True,
            )
            single = FlowRun.objects.select_related("state").get(id=single.id)
        for name in ("state_type", "state_name", "run_count", "expected_start_time", "next_scheduled_start_time",
                     "start_time", "end_time", "total_run_time"):  # fmt: skip
            assert getattr(bulk, name) == getattr(single, name), name
        assert bulk.state_timestamp == bulk.state.timestamp
        assert single.state_timestamp == single.state.timestamp
        for name in ("type", "name", "message", "data"):
            assert getattr(bulk.state, name) == getattr(single.state, name), name
        details = dict(single.state.state_details, flow_run_id=str(bulk.id))
        assert bulk.state.state_details == details
        assert bulk.state.flow_run_id == bulk.id and bulk.state_id == bulk.state.id

    def test_scheduled_runs_are_what_a_runner_polls(self, tenant, dev):
        deployment = _deployment(tenant.workspace.id, _every(60))
        now = dt.datetime.now(UTC)
        scheduler_tick(now=now, config=DEFAULTS)
        response = dev.post(
            f"{tenant.prefix}/deployments/get_scheduled_flow_runs",
            {"deployment_ids": [str(deployment.id)], "scheduled_before": str(now + dt.timedelta(minutes=3))},
            format="json",
        )
        assert response.status_code == 200 and len(response.json()) == 3
        assert all(run["auto_scheduled"] and run["state"]["type"] == "SCHEDULED" for run in response.json())

    def test_no_events_for_auto_scheduled_runs_as_prefect(self, tenant):
        _deployment(tenant.workspace.id, _every(3600))
        scheduler_tick(now=NOW, config=DEFAULTS)
        assert (
            not Event.objects.for_workspace(tenant.workspace.id)
            .filter(event__startswith="prefect.flow-run.")
            .exists()
        )

    def test_each_workspace_gets_its_own_runs(self, tenant):
        other = make_tenant()
        mine = _deployment(tenant.workspace.id, _every(3600))
        theirs = _deployment(other.workspace.id, _every(3600))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 6
        assert {run.deployment_id for run in _runs(tenant.workspace.id)} == {mine.id}
        assert {run.deployment_id for run in _runs(other.workspace.id)} == {theirs.id}
        with workspace_scope(other.workspace.id):
            assert {s.flow_run.workspace_id for s in FlowRunState.objects.select_related("flow_run")} == {
                other.workspace.id
            }


def _needing(now=NOW, config=DEFAULTS):
    return {row["id"] for row in _schedules_needing_runs(now=now, config=config, after=None)}


def _schedule_ids(deployment):
    return list(
        DeploymentSchedule.objects.unscoped().filter(deployment=deployment).values_list("id", flat=True)
    )


@pytest.mark.django_db
class TestWhichSchedulesAreLookedAt:
    """The tick runs forever, so SQL picks the schedules that need runs; these prove it picks
    every one that does and none that does not."""

    def test_an_idle_tick_looks_at_nothing_and_costs_one_query(self, tenant, django_assert_num_queries):
        for index in range(5):
            _deployment(tenant.workspace.id, _every(3600), _cron("*/10 * * * *"), name=f"d{index}")
        assert scheduler_tick(now=NOW, config=DEFAULTS) > 0
        assert _needing() == set()
        with django_assert_num_queries(1):
            assert scheduler_tick(now=NOW, config=DEFAULTS) == 0

    def test_a_schedule_short_of_runs_gets_them(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600))
        scheduler_tick(now=NOW, config=DEFAULTS)
        with workspace_scope(tenant.workspace.id):
            FlowRun.objects.filter(deployment_id=deployment.id, expected_start_time__hour=13).delete()
        assert _needing() == set(_schedule_ids(deployment))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 1
        assert len(_runs(tenant.workspace.id, deployment_id=deployment.id)) == 3

    def test_enough_runs_but_none_far_enough_ahead(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(300))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 13  # 10:20 … 11:20
        later = NOW + dt.timedelta(minutes=30)  # seven runs left, the last 35 min ahead
        assert _needing(now=later) == set(_schedule_ids(deployment))
        assert scheduler_tick(now=later, config=DEFAULTS) == 6  # … 11:50
        assert _needing(now=later) == set()

    def test_each_schedule_of_a_deployment_counts_its_own_runs(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(3600, slug="hourly"), _every(600, slug="often"))
        scheduler_tick(now=NOW, config=DEFAULTS)
        hourly = DeploymentSchedule.objects.unscoped().get(deployment=deployment, slug="hourly")
        with workspace_scope(tenant.workspace.id):
            FlowRun.objects.filter(deployment_id=deployment.id, created_by__id=str(hourly.id)).delete()
        # The other schedule's ten runs do not make up for the hourly one's none.
        assert _needing() == {hourly.id}
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 3

    def test_a_lower_max_scheduled_runs_is_enough(self, tenant):
        deployment = _deployment(tenant.workspace.id, _every(86400, max_scheduled_runs=2))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 2
        assert _needing() == set()
        with workspace_scope(tenant.workspace.id):
            FlowRun.objects.filter(deployment_id=deployment.id, expected_start_time__day=7).delete()
        assert _needing() == set(_schedule_ids(deployment))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 1

    def test_paused_and_inactive_are_not_looked_at_until_resumed(self, tenant):
        paused = _deployment(tenant.workspace.id, _every(3600), paused=True, name="paused")
        inactive = _deployment(tenant.workspace.id, _every(3600, active=False), name="inactive")
        assert _needing() == set()
        Deployment.objects.unscoped().filter(id=paused.id).update(paused=False)
        DeploymentSchedule.objects.unscoped().filter(deployment=inactive).update(active=True)
        assert _needing() == set(_schedule_ids(paused)) | set(_schedule_ids(inactive))
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 6

    def test_a_schedule_change_replans(self, tenant):
        now = timezone.now().replace(microsecond=0)
        deployment = _deployment(tenant.workspace.id, _every(3600))
        assert scheduler_tick(now=now, config=DEFAULTS) == 3
        (schedule_id,) = _schedule_ids(deployment)
        new = DeploymentScheduleUpdate(schedule={"interval": 7200, "anchor_date": "2026-01-01T00:30:00Z"})
        with workspace_scope(tenant.workspace.id):
            deployment_schedule_update(deployment_id=deployment.id, schedule_id=schedule_id, data=new)
        assert _needing(now=now) == {schedule_id}
        assert scheduler_tick(now=now, config=DEFAULTS) == 3
        runs = _runs(tenant.workspace.id, deployment_id=deployment.id, expected_start_time__gte=now)
        assert len(runs) == 3
        assert all(
            run.expected_start_time.minute == 30 and run.expected_start_time.hour % 2 == 0 for run in runs
        )

    def test_the_once_compiled_query_answers_as_the_query_built_each_time(self, tenant):
        """The first batch's SQL is compiled once per process (PostgreSQL) and its times shifted to
        each tick's now: the same rows, values converted alike, as building it again, also where
        the billing grace (a time relative to now) decides."""
        deployments = [
            _deployment(tenant.workspace.id, _every(3600), _cron("*/10 * * * *"), name=f"d{index}")
            for index in range(3)
        ]
        scheduler_tick(now=NOW, config=DEFAULTS)
        with workspace_scope(tenant.workspace.id):
            FlowRun.objects.filter(deployment_id=deployments[1].id, expected_start_time__hour=13).delete()
        account = tenant.account
        for since in (None, NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=30)):
            type(account).objects.filter(pk=account.pk).update(
                billing_status="past_due" if since else "active", billing_status_since=since
            )
            for now in (NOW, NOW + dt.timedelta(minutes=30), NOW + dt.timedelta(days=2)):
                built = list(scheduler._schedules_query(now=now, config=DEFAULTS, after=None))
                assert _schedules_needing_runs(now=now, config=DEFAULTS, after=None) == built
                assert (built == []) == (since == NOW - dt.timedelta(days=30))
                assert all(isinstance(row["schedule"], dict) for row in built)

    def test_batches_cover_every_schedule(self, tenant, monkeypatch):
        monkeypatch.setattr(scheduler, "SCHEDULE_BATCH_SIZE", 2)
        for index in range(5):
            _deployment(tenant.workspace.id, _every(3600), name=f"d{index}")
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 15
        assert scheduler_tick(now=NOW, config=DEFAULTS) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_two_schedulers_at_once_create_no_duplicates():
    tenants = [make_tenant() for _ in range(2)]
    for tenant in tenants:
        for index in range(40):
            _deployment(tenant.workspace.id, _every(600), _cron("*/7 * * * *"), name=f"d{index}")
    barrier = threading.Barrier(3)
    results: list[int] = []
    errors: list[BaseException] = []

    def tick():
        try:
            barrier.wait()
            results.append(scheduler_tick(now=NOW, config=DEFAULTS))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    total = FlowRun.objects.unscoped().count()
    per_deployment = 7 + 10  # every 10 min: 10:20 … 11:20; every 7 min: 10:21 … 11:21
    assert total == sum(results) == 2 * 40 * per_deployment
    keys = FlowRun.objects.unscoped().values_list("workspace_id", "idempotency_key")
    assert len(set(keys)) == total
    assert FlowRunState.objects.unscoped().count() == total
    assert not FlowRun.objects.unscoped().filter(state__isnull=True).exists()
    assert scheduler_tick(now=NOW, config=DEFAULTS) == 0
