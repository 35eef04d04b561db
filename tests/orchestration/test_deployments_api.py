"""Deployments over the wire: upsert, reads, updates, runs from a deployment, the runner's poll,
the plan limit; roles. Every response is checked against the real client's pydantic models."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from prefect.client.schemas.objects import DeploymentSchedule as ClientSchedule
from prefect.client.schemas.objects import FlowRun as ClientFlowRun
from prefect.client.schemas.responses import DeploymentResponse

from orchestration.models import (
    ConcurrencyLimitV2,
    Deployment,
    DeploymentSchedule,
    Event,
    Flow,
    FlowRun,
    WorkQueue,
)
from orchestration.services.scheduler import scheduler_tick
from tenants.scoping import workspace_scope
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "n": {"default": 3, "position": 0, "title": "n", "type": "integer"},
        "name": {"position": 1, "title": "name", "type": "string"},
    },
    "required": ["name"],
}


@pytest.fixture
def flow_id(tenant, dev):
    return dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]


def _deploy(dev, tenant, flow_id, **extra):
    """The body ``flow.serve()`` sends (captured), with overrides."""
    body = {
        "name": "nightly",
        "flow_id": flow_id,
        "paused": False,
        "schedules": [],
        "concurrency_limit": None,
        "concurrency_options": None,
        "enforce_parameter_schema": True,
        "parameter_openapi_schema": SCHEMA,
        "parameters": {"name": "world"},
        "tags": ["a"],
        "labels": {},
        "work_queue_name": None,
        "storage_document_id": None,
        "infrastructure_document_id": None,
        "description": "None",
        "path": ".",
        "entrypoint": "flows.py:etl",
        "job_variables": {},
        "version": "v1",
        "version_info": {"type": "prefect:simple", "version": "v1"},
        **extra,
    }
    return dev.post(f"{tenant.prefix}/deployments/", body, format="json")


def _hourly(**extra):
    return {"schedule": {"interval": 3600, "anchor_date": "2024-01-01T00:00:00Z", "timezone": "UTC"}, **extra}


def _runs(tenant, **lookup):
    with workspace_scope(tenant.workspace.id):
        return list(FlowRun.objects.filter(**lookup))


def _pool(tenant, name="proc-pool"):
    from orchestration.services.work_pools import work_pool_create

    with workspace_scope(tenant.workspace.id):
        return work_pool_create(name=name, type="process")


class TestCreate:
    def test_create_answers_201_in_prefects_shape(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id)
        assert response.status_code == 201, response.json()
        body = response.json()
        parsed = DeploymentResponse.model_validate(body)
        assert parsed.name == "nightly" and str(parsed.flow_id) == flow_id
        assert body["labels"] == {"prefect.flow.id": flow_id}
        assert body["status"] == "NOT_READY" and body["pull_steps"] == []
        assert body["concurrency_limit"] is None and body["global_concurrency_limit"] is None
        assert body["created_by"]["type"] == "BOT"
        assert (
            Event.objects.for_workspace(tenant.workspace.id)
            .filter(event="prefect.deployment.created")
            .count()
            == 1
        )

    def test_upsert_by_flow_and_name_answers_200_and_keeps_the_id(self, tenant, dev, flow_id):
        first = _deploy(dev, tenant, flow_id, schedules=[_hourly()]).json()
        scheduler_tick()
        assert _runs(tenant, deployment_id=first["id"], auto_scheduled=True)
        second = _deploy(dev, tenant, flow_id, version="v2", tags=["b"], schedules=[])
        assert second.status_code == 200
        assert second.json()["id"] == first["id"]
        assert second.json()["version"] == "v2" and second.json()["tags"] == ["b"]
        assert second.json()["schedules"] == []
        # The old schedule's future runs are gone with it.
        assert not _runs(tenant, deployment_id=first["id"], auto_scheduled=True)
        with workspace_scope(tenant.workspace.id):
            assert Deployment.objects.count() == 1
        events = Event.objects.for_workspace(tenant.workspace.id).filter(event="prefect.deployment.updated")
        assert set(events.get().payload["updated_fields"]) >= {"version", "tags"}

    def test_unknown_flow_is_404(self, tenant, dev):
        assert _deploy(dev, tenant, str(uuid.uuid4())).status_code == 404

    def test_parameters_must_conform_to_the_schema(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id, parameters={"n": "lots"})
        assert response.status_code == 422
        assert "Validation failed for field 'n'" in response.json()["detail"]
        with workspace_scope(tenant.workspace.id):
            assert not Deployment.objects.exists()

    def test_parameters_are_not_checked_without_enforcement(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id, parameters={"n": "lots"}, enforce_parameter_schema=False)
        assert response.status_code == 201

    def test_an_invalid_parameter_schema_is_refused(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id, parameter_openapi_schema={"type": "nonsense"}, parameters={})
        assert response.status_code == 422
        assert "not a valid json schema" in response.json()["detail"]

    def test_everything_sent_is_stored(self, tenant, dev, flow_id):
        body = _deploy(
            dev,
            tenant,
            flow_id,
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": "/x"}}],
            job_variables={"env": {"A": "1"}},
            labels={"team": "data"},
            concurrency_limit=2,
            concurrency_options={"collision_strategy": "CANCEL_NEW"},
            paused=True,
        ).json()
        assert body["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/x"
        assert body["job_variables"] == {"env": {"A": "1"}}
        assert body["labels"] == {"prefect.flow.id": flow_id, "team": "data"}
        assert body["paused"] is True
        assert body["concurrency_options"] == {"collision_strategy": "CANCEL_NEW"}
        with workspace_scope(tenant.workspace.id):
            deployment = Deployment.objects.get()
            assert deployment.concurrency_limit == 2
            assert ConcurrencyLimitV2.objects.filter(name=f"deployment:{deployment.id}", limit=2).exists()
        assert body["global_concurrency_limit"]["limit"] == 2

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": "x"},
            {"name": "x", "flow_id": "nope"},
            {"name": "", "flow_id": str(uuid.uuid4())},
            {"name": "x", "flow_id": str(uuid.uuid4()), "schedules": [{"schedule": {"cron": "nope"}}]},
            {"name": "x", "flow_id": str(uuid.uuid4()), "concurrency_limit": 0},
        ],
    )
    def test_bad_bodies_are_422(self, tenant, dev, body):
        response = dev.post(f"{tenant.prefix}/deployments/", body, format="json")
        assert response.status_code == 422
        assert response.json()["detail"].startswith("Invalid request received")

    def test_a_bad_schedule_names_itself_and_writes_nothing(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id, schedules=[{"schedule": {"cron": "61 * * * *"}}])
        assert response.status_code == 422
        assert 'schedules.0.schedule.cron: Invalid cron string: "61 * * * *"' in response.json()["detail"]
        with workspace_scope(tenant.workspace.id):
            assert not Deployment.objects.exists() and not DeploymentSchedule.objects.exists()


class TestWorkPools:
    def test_pool_alone_gives_its_default_queue(self, tenant, dev, flow_id):
        pool = _pool(tenant)
        body = _deploy(dev, tenant, flow_id, work_pool_name="proc-pool").json()
        assert body["work_pool_name"] == "proc-pool"
        assert body["work_queue_name"] == "default"
        assert body["work_queue_id"] == str(pool.default_queue_id)

    def test_pool_and_new_queue_creates_the_queue(self, tenant, dev, flow_id):
        _pool(tenant)
        body = _deploy(dev, tenant, flow_id, work_pool_name="proc-pool", work_queue_name="gpu").json()
        with workspace_scope(tenant.workspace.id):
            queue = WorkQueue.objects.get(name="gpu")
        assert body["work_queue_id"] == str(queue.id) and queue.work_pool.name == "proc-pool"

    def test_unknown_pool_is_404_with_its_name_and_writes_nothing(self, tenant, dev, flow_id):
        response = _deploy(dev, tenant, flow_id, work_pool_name="nope")
        assert response.status_code == 404
        assert response.json()["detail"] == 'Work pool "nope" not found.'
        with workspace_scope(tenant.workspace.id):
            assert not Deployment.objects.exists()

    def test_runs_carry_the_pool_and_queue(self, tenant, dev, flow_id):
        pool = _pool(tenant)
        deployment = _deploy(dev, tenant, flow_id, work_pool_name="proc-pool").json()
        run = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        ).json()
        assert run["work_pool_name"] == "proc-pool" and run["work_pool_id"] == str(pool.id)
        assert run["work_queue_name"] == "default" and run["work_queue_id"] == deployment["work_queue_id"]
        other = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run",
            {"work_queue_name": "urgent"},
            format="json",
        ).json()
        assert other["work_queue_name"] == "urgent"
        with workspace_scope(tenant.workspace.id):
            assert WorkQueue.objects.filter(work_pool=pool, name="urgent").exists()

    def test_a_queue_for_a_deployment_without_a_pool_is_400(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        response = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run",
            {"work_queue_name": "urgent"},
            format="json",
        )
        assert response.status_code == 400
        assert "not associated with a work pool" in response.json()["detail"]

    def test_patch_moves_the_deployment_between_pools(self, tenant, dev, flow_id):
        _pool(tenant)
        _pool(tenant, "other")
        deployment = _deploy(dev, tenant, flow_id, work_pool_name="proc-pool").json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        assert dev.patch(url, {"work_pool_name": "other"}, format="json").status_code == 204
        assert dev.get(url).json()["work_pool_name"] == "other"
        assert dev.patch(url, {"work_pool_name": None}, format="json").status_code == 204
        assert dev.get(url).json()["work_pool_name"] is None


class TestReads:
    def test_by_id_and_by_name(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        by_id = dev.get(f"{tenant.prefix}/deployments/{deployment['id']}")
        by_name = dev.get(f"{tenant.prefix}/deployments/name/etl/nightly")
        assert by_id.status_code == by_name.status_code == 200
        assert by_id.json()["id"] == by_name.json()["id"] == deployment["id"]

    @pytest.mark.parametrize("path", ["deployments/name/etl/nope", "deployments/name/nope/nightly"])
    def test_missing_by_name_is_404_as_prefect(self, tenant, dev, flow_id, path):
        _deploy(dev, tenant, flow_id)
        response = dev.get(f"{tenant.prefix}/{path}")
        assert response.status_code == 404 and response.json() == {"detail": "Deployment not found"}

    @pytest.mark.parametrize("ref", ["8b363c75-53e6-4a15-bb1c-3d104b09db74", "not-a-uuid"])
    def test_missing_by_id_is_404(self, tenant, dev, ref):
        assert dev.get(f"{tenant.prefix}/deployments/{ref}").status_code == 404

    def test_filter_count_paginate(self, tenant, dev, flow_id):
        for name, tags in (("a", ["x"]), ("b", ["y"]), ("c", ["x", "y"])):
            _deploy(dev, tenant, flow_id, name=name, tags=tags)
        listed = dev.post(f"{tenant.prefix}/deployments/filter", {}, format="json").json()
        assert [d["name"] for d in listed] == ["a", "b", "c"]
        body = {"deployments": {"tags": {"all_": ["x"]}}}
        assert [
            d["name"] for d in dev.post(f"{tenant.prefix}/deployments/filter", body, format="json").json()
        ] == [
            "a",
            "c",
        ]
        assert dev.post(f"{tenant.prefix}/deployments/count", body, format="json").json() == 2
        by_flow = {"flows": {"name": {"any_": ["etl"]}}, "sort": "NAME_DESC", "limit": 2}
        assert [
            d["name"] for d in dev.post(f"{tenant.prefix}/deployments/filter", by_flow, format="json").json()
        ] == [
            "c",
            "b",
        ]
        page = dev.post(
            f"{tenant.prefix}/deployments/paginate", {"limit": 2, "page": 2}, format="json"
        ).json()
        assert (page["count"], page["pages"], page["page"], [d["name"] for d in page["results"]]) == (
            3,
            2,
            2,
            ["c"],
        )
        assert (
            dev.post(
                f"{tenant.prefix}/deployments/filter", {"deployments": {"nope": 1}}, format="json"
            ).status_code
            == 422
        )

    def test_filter_answers_in_a_fixed_number_of_queries(
        self, tenant, dev, flow_id, django_assert_max_num_queries
    ):
        for index in range(6):
            _deploy(dev, tenant, flow_id, name=f"d{index}", schedules=[_hourly()])
        with django_assert_max_num_queries(12):
            assert len(dev.post(f"{tenant.prefix}/deployments/filter", {}, format="json").json()) == 6


class TestUpdate:
    def test_patch_changes_only_what_is_sent(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        assert (
            dev.patch(url, {"description": "new", "parameters": {"name": "you"}}, format="json").status_code
            == 204
        )
        after = dev.get(url).json()
        assert after["description"] == "new" and after["parameters"] == {"name": "you"}
        assert after["version"] == "v1" and after["tags"] == ["a"] and after["paused"] is False

    def test_patch_with_bad_parameters_is_409_as_prefect(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        response = dev.patch(
            f"{tenant.prefix}/deployments/{deployment['id']}", {"parameters": {"n": "x"}}, format="json"
        )
        assert response.status_code == 409 and "Validation failed for field 'n'" in response.json()["detail"]

    def test_pausing_removes_future_auto_scheduled_runs_only(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly()]).json()
        assert scheduler_tick() >= 3
        manual = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        ).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        assert dev.patch(url, {"paused": True}, format="json").status_code == 204
        left = _runs(tenant, deployment_id=deployment["id"])
        assert [str(run.id) for run in left] == [manual["id"]]
        assert scheduler_tick() == 0  # a paused deployment is not scheduled
        assert dev.patch(url, {"paused": False}, format="json").status_code == 204
        assert scheduler_tick() >= 3

    def test_pause_and_resume_routes(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly()]).json()
        scheduler_tick()
        base = f"{tenant.prefix}/deployments/{deployment['id']}"
        response = dev.post(f"{base}/pause_deployment", format="json")
        assert response.status_code == 200 and response.content == b"null"
        assert dev.get(base).json()["paused"] is True
        assert not _runs(tenant, deployment_id=deployment["id"])
        assert dev.post(f"{base}/resume_deployment", format="json").status_code == 200
        assert dev.get(base).json()["paused"] is False
        assert dev.post(f"{tenant.prefix}/deployments/{uuid.uuid4()}/pause_deployment").status_code == 404

    def test_patch_replaces_schedules_and_their_runs(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly()]).json()
        scheduler_tick()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        cron = {"schedule": {"cron": "0 9 * * *", "timezone": "America/New_York"}, "active": True}
        assert dev.patch(url, {"schedules": [cron]}, format="json").status_code == 204
        schedules = dev.get(url).json()["schedules"]
        assert [s["schedule"]["cron"] for s in schedules] == ["0 9 * * *"]
        assert not _runs(tenant, deployment_id=deployment["id"])

    def test_schedules_with_slugs_are_patched_in_place(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly(slug="hourly")]).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        schedule_id = deployment["schedules"][0]["id"]
        change = {"schedules": [{"slug": "hourly", "active": False}]}
        assert dev.patch(url, change, format="json").status_code == 204
        after = dev.get(url).json()["schedules"]
        assert [(s["id"], s["active"]) for s in after] == [(schedule_id, False)]
        missing_slug = {"schedules": [_hourly()]}
        response = dev.patch(url, missing_slug, format="json")
        assert response.status_code == 422 and "provide a slug" in response.json()["detail"]

    def test_removing_the_concurrency_limit_drops_its_backing_limit(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, concurrency_limit=3).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        assert dev.patch(url, {"concurrency_limit": 5}, format="json").status_code == 204
        assert dev.get(url).json()["global_concurrency_limit"]["limit"] == 5
        assert dev.patch(url, {"concurrency_limit": None}, format="json").status_code == 204
        assert dev.get(url).json()["global_concurrency_limit"] is None
        with workspace_scope(tenant.workspace.id):
            assert not ConcurrencyLimitV2.objects.exists()


class TestDelete:
    def test_delete_removes_the_deployment_and_its_scheduled_runs(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly()], concurrency_limit=1).json()
        scheduler_tick()
        manual = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        )
        running = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        )
        dev.post(
            f"{tenant.prefix}/flow_runs/{running.json()['id']}/set_state",
            {"state": {"type": "RUNNING"}, "force": True},
            format="json",
        )
        url = f"{tenant.prefix}/deployments/{deployment['id']}"
        assert dev.delete(url).status_code == 204
        assert dev.get(url).status_code == 404
        assert dev.delete(url).status_code == 404
        left = _runs(tenant)
        assert [str(run.id) for run in left] == [running.json()["id"]]  # only the run that started
        assert manual.status_code == 201
        with workspace_scope(tenant.workspace.id):
            assert not DeploymentSchedule.objects.exists() and not ConcurrencyLimitV2.objects.exists()
        assert (
            Event.objects.for_workspace(tenant.workspace.id)
            .filter(event="prefect.deployment.deleted")
            .exists()
        )


class TestCreateFlowRun:
    def test_parameters_merge_with_defaults_and_state_is_scheduled_now(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, parameters={"name": "world", "n": 1}).json()
        before = timezone.now()
        response = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run",
            {"parameters": {"n": 7}, "tags": ["b", "a"], "labels": {"k": "v"}},
            format="json",
        )
        assert response.status_code == 201
        run = response.json()
        ClientFlowRun.model_validate(run)
        assert run["parameters"] == {"name": "world", "n": 7}
        assert run["deployment_id"] == deployment["id"] and run["deployment_version"] == "v1"
        assert run["state"]["type"] == "SCHEDULED" and run["state"]["name"] == "Scheduled"
        scheduled = dt.datetime.fromisoformat(
            run["state"]["state_details"]["scheduled_time"].replace("Z", "+00:00")
        )
        assert before <= scheduled <= timezone.now()
        assert run["tags"] == ["a", "b"] and run["auto_scheduled"] is False
        assert run["labels"]["prefect.deployment.id"] == deployment["id"] and run["labels"]["k"] == "v"

    def test_the_clis_body(self, tenant, dev, flow_id):
        """``prefect deployment run`` (captured)."""
        deployment = _deploy(dev, tenant, flow_id).json()
        when = (timezone.now() + dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        body = {
            "state": {
                "type": "SCHEDULED",
                "name": "Scheduled",
                "message": None,
                "state_details": {"scheduled_time": when, "traceparent": None},
                "data": None,
            },
            "name": None,
            "parameters": {},
            "context": {},
            "tags": [],
            "idempotency_key": None,
            "parent_task_run_id": None,
            "job_variables": {},
            "labels": {},
        }
        run = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", body, format="json"
        ).json()
        assert run["next_scheduled_start_time"] == when
        assert run["expected_start_time"] == run["next_scheduled_start_time"]

    @pytest.mark.parametrize(
        ("parameters", "problem"),
        [
            ({"n": "seven"}, "Validation failed for field 'n'"),
            ({"name": None}, "Validation failed for field 'name'"),
        ],
    )
    def test_bad_parameters_are_409_as_prefect_and_create_no_run(
        self, tenant, dev, flow_id, parameters, problem
    ):
        deployment = _deploy(dev, tenant, flow_id).json()
        response = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run",
            {"parameters": parameters},
            format="json",
        )
        assert response.status_code == 409
        assert (
            response.json()["detail"].startswith("Error creating flow run: ")
            and problem in response.json()["detail"]
        )
        assert not _runs(tenant)

    def test_a_missing_required_parameter_is_409(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, parameters={}).json()
        response = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        )
        assert response.status_code == 409 and "'name' is a required property" in response.json()["detail"]

    def test_enforcement_can_be_switched_off_per_run(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        response = dev.post(
            f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run",
            {"parameters": {"n": "seven"}, "enforce_parameter_schema": False},
            format="json",
        )
        assert response.status_code == 201

    def test_idempotency_key(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run"
        first = dev.post(url, {"idempotency_key": "once"}, format="json")
        second = dev.post(url, {"idempotency_key": "once"}, format="json")
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]

    def test_unknown_deployment_is_404(self, tenant, dev):
        response = dev.post(f"{tenant.prefix}/deployments/{uuid.uuid4()}/create_flow_run", {}, format="json")
        assert response.status_code == 404


class TestRunnerPoll:
    def test_due_runs_with_the_runners_space_separated_time(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        url = f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run"
        now_run = dev.post(url, {}, format="json").json()
        later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
        dev.post(
            url, {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}}, format="json"
        )
        before = str(timezone.now() + dt.timedelta(seconds=10))
        assert " " in before and "T" not in before
        response = dev.post(
            f"{tenant.prefix}/deployments/get_scheduled_flow_runs",
            {"deployment_ids": [deployment["id"]], "scheduled_before": before},
            format="json",
        )
        assert response.status_code == 200
        assert [run["id"] for run in response.json()] == [now_run["id"]]
        ClientFlowRun.model_validate(response.json()[0])
        polled = dev.get(f"{tenant.prefix}/deployments/{deployment['id']}").json()
        assert polled["status"] == "READY" and polled["last_polled"] is not None
        assert (
            Event.objects.for_workspace(tenant.workspace.id).filter(event="prefect.deployment.ready").count()
            == 1
        )

    def test_limit_and_no_time(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        for _ in range(3):
            dev.post(f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json")
        body = {"deployment_ids": [deployment["id"]], "limit": 2}
        assert (
            len(dev.post(f"{tenant.prefix}/deployments/get_scheduled_flow_runs", body, format="json").json())
            == 2
        )

    def test_bad_time_is_422(self, tenant, dev):
        body = {"deployment_ids": [], "scheduled_before": "yesterday-ish"}
        assert (
            dev.post(f"{tenant.prefix}/deployments/get_scheduled_flow_runs", body, format="json").status_code
            == 422
        )


class TestSchedulesRoutes:
    def test_create_read_update_delete(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        base = f"{tenant.prefix}/deployments/{deployment['id']}/schedules"
        created = dev.post(
            base,
            [
                {"schedule": {"cron": "0 9 * * *", "timezone": "America/New_York"}, "slug": "morning"},
                {"schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO"}, "active": False, "parameters": {"n": 1}},
            ],
            format="json",
        )
        assert created.status_code == 201, created.json()
        schedules = [ClientSchedule.model_validate(item) for item in created.json()]
        assert schedules[1].schedule.rrule.startswith("DTSTART:20200101T000000")
        listed = dev.get(base).json()
        assert [item["slug"] for item in listed] == ["morning", None]
        schedule_id = listed[0]["id"]
        assert (
            dev.patch(
                f"{base}/{schedule_id}", {"active": False, "max_scheduled_runs": 5}, format="json"
            ).status_code
            == 204
        )
        after = dev.get(base).json()[0]
        assert after["active"] is False and after["max_scheduled_runs"] == 5
        assert after["schedule"]["cron"] == "0 9 * * *"
        assert dev.delete(f"{base}/{schedule_id}").status_code == 204
        assert len(dev.get(base).json()) == 1
        assert dev.delete(f"{base}/{schedule_id}").status_code == 404
        assert dev.patch(f"{base}/{uuid.uuid4()}", {"active": True}, format="json").status_code == 404

    def test_duplicate_slugs_are_409(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id, schedules=[_hourly(slug="s")]).json()
        base = f"{tenant.prefix}/deployments/{deployment['id']}/schedules"
        response = dev.post(base, [_hourly(slug="s")], format="json")
        assert response.status_code == 409
        assert response.json()["detail"] == "Schedule slugs must be unique within a deployment."

    @pytest.mark.parametrize(
        ("schedule", "problem"),
        [
            ({"cron": "not a cron"}, "Invalid cron string"),
            ({"cron": "H * * * *"}, "Invalid cron string"),
            ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "Invalid timezone"),
            ({"interval": 0}, "interval must be positive"),
            ({"interval": -5}, "interval must be positive"),
            ({"interval": 60, "timezone": "Nowhere"}, "Invalid timezone"),
            ({"rrule": "FREQ=SOMETIMES"}, "Invalid RRule string"),
            ({"rrule": "RDATE:" + ",".join(["20240101T000000Z"] * 500)}, "max length is 6500"),
            ({"cron": "0 9 * * *", "extra": 1}, "Extra inputs are not permitted"),
            ({"when": "sometimes"}, "one of interval, cron or rrule"),
        ],
    )
    def test_invalid_schedules_are_422_and_store_nothing(self, tenant, dev, flow_id, schedule, problem):
        deployment = _deploy(dev, tenant, flow_id).json()
        base = f"{tenant.prefix}/deployments/{deployment['id']}/schedules"
        response = dev.post(base, [{"schedule": schedule}], format="json")
        assert response.status_code == 422
        assert problem in response.json()["detail"], response.json()
        assert dev.get(base).json() == []

    def test_max_scheduled_runs_is_bounded_as_prefect(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        base = f"{tenant.prefix}/deployments/{deployment['id']}/schedules"
        response = dev.post(base, [_hourly(max_scheduled_runs=51)], format="json")
        assert response.status_code == 422 and "less than or equal to 50" in response.json()["detail"]


class TestPlanLimit:
    def test_a_deployment_beyond_the_plan_is_refused_and_writes_nothing(self, tenant, dev, flow_id):
        tenant.account.plan = "hobby"  # five deployments
        tenant.account.save(update_fields=["plan"])
        # Deployments of another workspace of the same account count too.
        other = WorkspaceFactory(account=tenant.account)
        with workspace_scope(other.id):
            other_flow = Flow.objects.create(workspace_id=other.id, name="elsewhere")
            for index in range(2):
                Deployment.objects.create(workspace_id=other.id, flow=other_flow, name=f"o{index}")
        for index in range(3):
            assert _deploy(dev, tenant, flow_id, name=f"d{index}").status_code == 201
        _pool(tenant)
        with workspace_scope(tenant.workspace.id):
            queues_before = WorkQueue.objects.count()
        refused = _deploy(dev, tenant, flow_id, name="one-too-many", schedules=[_hourly()], work_pool_name="proc-pool",
                          work_queue_name="fresh")  # fmt: skip
        assert refused.status_code == 403
        detail = refused.json()["detail"]
        assert "Hobby plan allows 5 deployments" in detail and "maximum number" in detail
        with workspace_scope(tenant.workspace.id):
            assert Deployment.objects.count() == 3
            assert WorkQueue.objects.count() == queues_before
            assert not DeploymentSchedule.objects.exists()
        # Updating an existing deployment is not a new one.
        assert _deploy(dev, tenant, flow_id, name="d0", version="v9").status_code == 200

    def test_the_client_sees_object_limit_reached(self, tenant, dev, flow_id):
        """The client turns a 403 mentioning "maximum number" into ``ObjectLimitReached``."""
        tenant.account.plan = "hobby"
        tenant.account.save(update_fields=["plan"])
        for index in range(5):
            _deploy(dev, tenant, flow_id, name=f"d{index}")
        refused = _deploy(dev, tenant, flow_id, name="d5")
        assert refused.status_code == 403 and "maximum number" in refused.json()["detail"]


class TestAutomationsOwnedBy:
    def test_answers_202_null_as_prefect_with_none_to_delete(self, tenant, dev, flow_id):
        deployment = _deploy(dev, tenant, flow_id).json()
        response = dev.delete(f"{tenant.prefix}/automations/owned-by/prefect.deployment.{deployment['id']}")
        assert response.status_code == 202 and response.content == b"null"


# --- roles --------------------------------------------------------------------------------------------


ROLE_CASES = [
    # (role, action, allowed)
    ("viewer", "read", True),
    ("viewer", "run", False),
    ("viewer", "write", False),
    ("viewer", "delete", False),
    ("runner", "read", True),
    ("runner", "run", True),
    ("runner", "write", False),
    ("runner", "delete", False),
    ("developer", "read", True),
    ("developer", "run", True),
    ("developer", "write", True),
    ("developer", "delete", True),
    ("owner", "delete", True),
    ("worker", "read", True),
    ("worker", "run", False),
    ("worker", "write", False),
]


@pytest.mark.parametrize(("role", "action", "allowed"), ROLE_CASES)
def test_role_matrix(tenant, dev, flow_id, role_client, role, action, allowed):
    deployment = _deploy(dev, tenant, flow_id).json()
    base = f"{tenant.prefix}/deployments/{deployment['id']}"
    client = role_client(role)
    calls = {
        "read": [
            lambda: client.get(base),
            lambda: client.get(f"{tenant.prefix}/deployments/name/etl/nightly"),
            lambda: client.post(f"{tenant.prefix}/deployments/filter", {}, format="json"),
            lambda: client.post(f"{tenant.prefix}/deployments/count", {}, format="json"),
            lambda: client.get(f"{base}/schedules"),
            lambda: client.post(
                f"{tenant.prefix}/deployments/get_scheduled_flow_runs",
                {"deployment_ids": [deployment["id"]]},
                format="json",
            ),
        ],
        "run": [lambda: client.post(f"{base}/create_flow_run", {}, format="json")],
        "write": [
            lambda: client.patch(base, {"description": "x"}, format="json"),
            lambda: client.post(f"{base}/pause_deployment"),
            lambda: client.post(f"{base}/schedules", [_hourly()], format="json"),
            lambda: _deploy(client, tenant, flow_id),
        ],
        "delete": [lambda: client.delete(base)],
    }
    for call in calls[action]:
        status = call().status_code
        if allowed:
            assert status < 400, (role, action, status)
        else:
            assert status == 403, (role, action, status)


def test_another_workspace_cannot_reach_a_deployment(two_workspaces, api_client):
    from tests.conftest import bearer

    a, b = two_workspaces
    b_client = bearer(api_client, b.service_key)
    flow = b_client.post(f"{b.prefix}/flows/", {"name": "etl"}, format="json").json()
    deployment = _deploy(b_client, b, flow["id"]).json()
    a_client = bearer(api_client, a.service_key)
    assert a_client.get(f"{a.prefix}/deployments/{deployment['id']}").status_code == 404
    assert a_client.get(f"{a.prefix}/deployments/name/etl/nightly").status_code == 404
    assert (
        a_client.patch(
            f"{a.prefix}/deployments/{deployment['id']}", {"paused": True}, format="json"
        ).status_code
        == 404
    )
    assert (
        a_client.post(
            f"{a.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json"
        ).status_code
        == 404
    )
    assert a_client.delete(f"{a.prefix}/deployments/{deployment['id']}").status_code == 404
    polled = a_client.post(
        f"{a.prefix}/deployments/get_scheduled_flow_runs",
        {"deployment_ids": [deployment["id"]]},
        format="json",
    )
    assert polled.json() == []
    # Using another workspace's flow id does not create a deployment either.
    assert _deploy(a_client, a, flow["id"]).status_code == 404
    with workspace_scope(b.workspace.id):
        assert Deployment.objects.get().paused is False


def _race(*calls):
    """Run the calls at once in threads; their results (or exceptions)."""
    import threading

    from django.db import connections

    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - returned to the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
class TestConcurrentCreation:
    def _create(self, tenant, name):
        from orchestration.schemas.deployments import DeploymentCreate
        from orchestration.services.deployments import deployment_upsert

        with workspace_scope(tenant.workspace.id):
            flow, _ = Flow.objects.get_or_create(workspace_id=tenant.workspace.id, name="etl")
        data = DeploymentCreate(name=name, flow_id=flow.id)

        def call():
            with workspace_scope(tenant.workspace.id):
                return deployment_upsert(workspace=tenant.workspace, data=data)[1]

        return call

    def test_two_creations_of_one_deployment_are_one_create_and_one_update(self, tenant):
        call = self._create(tenant, "same")
        assert sorted(_race(call, call)) == [False, True]
        with workspace_scope(tenant.workspace.id):
            assert Deployment.objects.count() == 1

    def test_two_creations_cannot_both_take_the_last_plan_slot(self, tenant):
        from core.errors import PlanLimitExceeded

        tenant.account.plan = "hobby"
        tenant.account.save(update_fields=["plan"])
        for index in range(4):
            self._create(tenant, f"d{index}")()
        results = _race(self._create(tenant, "x"), self._create(tenant, "y"))
        assert sorted(type(result).__name__ for result in results) == ["PlanLimitExceeded", "bool"]
        assert any(isinstance(result, PlanLimitExceeded) for result in results)
        with workspace_scope(tenant.workspace.id):
            assert Deployment.objects.count() == 5


class TestJobVariables:
    """Job variables are checked against the pool's base job template, as Prefect does."""

    TEMPLATE = {
        "job_configuration": {"command": "{{ command }}", "cpu": "{{ cpu }}", "image": "{{ image }}"},
        "variables": {
            "type": "object",
            "properties": {
                "cpu": {"type": "integer", "default": 1},
                "image": {"type": "string"},
                "command": {"type": "string"},
            },
            "required": ["image"],
        },
    }

    @pytest.fixture
    def pool(self, tenant, dev):
        response = dev.post(
            f"{tenant.prefix}/work_pools/",
            {"name": "k8s", "type": "kubernetes", "base_job_template": self.TEMPLATE},
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    def _create_run(self, dev, tenant, deployment_id, job_variables):
        body = {
            "state": {"type": "SCHEDULED", "name": "Scheduled"},
            "parameters": {},
            "job_variables": job_variables,
        }
        return dev.post(f"{tenant.prefix}/deployments/{deployment_id}/create_flow_run", body, format="json")

    def test_a_wrong_type_is_422_and_nothing_is_stored(self, tenant, dev, flow_id, pool):
        response = _deploy(dev, tenant, flow_id, work_pool_name="k8s", job_variables={"cpu": "lots"})
        assert response.status_code == 422, response.content
        assert response.json()["detail"].startswith(
            "Error creating deployment: Validation failed for field 'cpu'"
        )
        with workspace_scope(tenant.workspace.id):
            assert not Deployment.objects.exists()

    def test_required_variables_are_checked_when_a_run_is_created(self, tenant, dev, flow_id, pool):
        # A deployment may leave a required variable to its runs...
        created = _deploy(dev, tenant, flow_id, work_pool_name="k8s", job_variables={"cpu": 2})
        assert created.status_code == 201, created.content
        deployment_id = created.json()["id"]
        # ...but a run must have it, of the right type.
        missing = self._create_run(dev, tenant, deployment_id, {})
        assert missing.status_code == 422 and "image" in missing.json()["detail"], missing.content
        wrong = self._create_run(dev, tenant, deployment_id, {"image": "python:3.12", "cpu": "x"})
        assert wrong.status_code == 422 and wrong.json()["detail"].startswith("Error creating flow run")
        assert _runs(tenant) == []
        ok = self._create_run(dev, tenant, deployment_id, {"image": "python:3.12"})
        assert ok.status_code == 201, ok.content
        assert ok.json()["job_variables"] == {"image": "python:3.12"}

    def test_a_patch_with_bad_job_variables_changes_nothing(self, tenant, dev, flow_id, pool):
        deployment_id = _deploy(dev, tenant, flow_id, work_pool_name="k8s").json()["id"]
        response = dev.patch(
            f"{tenant.prefix}/deployments/{deployment_id}", {"job_variables": {"cpu": [1]}}, format="json"
        )
        assert response.status_code == 422, response.content
        assert response.json()["detail"].startswith("Error updating deployment")
        with workspace_scope(tenant.workspace.id):
            assert Deployment.objects.get(id=deployment_id).job_variables == {}
