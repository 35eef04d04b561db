"""Prefect's UI routes per workspace: the answers Prefect's server gives for the same rows, a
bounded number of queries however many rows, and nothing of another workspace."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models import Deployment, Flow, FlowRun, TaskRun, Variable
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


class World:
    def __init__(self, tenant):
        self.tenant = tenant
        self.ws = tenant.workspace.id

    def flow(self, name="etl") -> Flow:
        return Flow.objects.for_workspace(self.ws).get_or_create(workspace_id=self.ws, name=name)[0]

    def run(self, flow, name="r", state="COMPLETED", **fields) -> FlowRun:
        return FlowRun.objects.for_workspace(self.ws).create(
            workspace_id=self.ws, flow=flow, name=name, state_type=state, state_name=state.title(), **fields
        )

    def task(self, run, state="COMPLETED", key=None, **fields) -> TaskRun:
        return TaskRun.objects.for_workspace(self.ws).create(
            workspace_id=self.ws, id=uuid.uuid4(), flow_run_id=run.id if run else None, name="t",
            task_key="t", dynamic_key=key or str(uuid.uuid4()), state_type=state, state_name=state.title(), **fields,
        )  # fmt: skip

    def deployment(self, flow, name) -> Deployment:
        return Deployment.objects.for_workspace(self.ws).create(workspace_id=self.ws, flow=flow, name=name)


@pytest.fixture
def world(tenant):
    return World(tenant)


def post(client, tenant, path, body):
    return client.post(f"{tenant.prefix}/{path}", body, format="json")


class TestFlowRunHistory:
    def test_columns_sort_and_limit(self, tenant, dev, world):
        flow = world.flow()
        done = world.run(flow, "done", "COMPLETED", expected_start_time=T0, start_time=T0 + dt.timedelta(seconds=30),
                         total_run_time=12.5)  # fmt: skip
        late = world.run(flow, "late", "SCHEDULED", expected_start_time=T0 + dt.timedelta(minutes=1))
        answer = post(dev, tenant, "ui/flow_runs/history", {})
        assert answer.status_code == 200
        rows = answer.json()
        assert [r["id"] for r in rows] == [str(late.id), str(done.id)]  # EXPECTED_START_TIME_DESC
        assert rows[1] == {"id": str(done.id), "state_type": "COMPLETED", "timestamp": "2026-01-01T12:00:30Z",
                           "duration": 12.5, "lateness": 30.0}  # fmt: skip
        # A run expected in the past that has not started is late by now.
        assert rows[0]["timestamp"] == "2026-01-01T12:01:00Z" and rows[0]["lateness"] > 3600
        filtered = post(
            dev, tenant, "ui/flow_runs/history", {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
        )
        assert [r["id"] for r in filtered.json()] == [str(done.id)]
        assert len(post(dev, tenant, "ui/flow_runs/history", {"limit": 1}).json()) == 1
        assert post(dev, tenant, "ui/flow_runs/history", {"limit": 1001}).status_code == 422
        assert post(dev, tenant, "ui/flow_runs/history", {"sort": "NOPE"}).status_code == 422

    def test_queries_do_not_grow_with_rows(self, tenant, dev, world, django_assert_max_num_queries):
        flow = world.flow()
        for i in range(50):
            world.run(flow, f"r{i}", expected_start_time=T0 + dt.timedelta(minutes=i))
        with django_assert_max_num_queries(10):
            assert (
                len(post(dev, tenant, "ui/flow_runs/history", {"flows": {"name": {"any_": ["etl"]}}}).json())
                == 50
            )


class TestCountTaskRuns:
    def test_counts_leave_out_subflow_task_runs(self, tenant, dev, world):
        flow = world.flow()
        one, two, none = world.run(flow, "one"), world.run(flow, "two"), world.run(flow, "none")
        world.task(one), world.task(one)
        parent = world.task(two)
        world.run(flow, "child", parent_task_run_id=parent.id)  # parent stands for a subflow run
        world.task(two)
        ids = [str(one.id), str(two.id), str(none.id)]
        answer = post(dev, tenant, "ui/flow_runs/count-task-runs", {"flow_run_ids": ids})
        assert answer.json() == {ids[0]: 2, ids[1]: 1, ids[2]: 0}

    def test_bad_bodies(self, tenant, dev):
        assert post(dev, tenant, "ui/flow_runs/count-task-runs", {}).status_code == 422
        assert post(dev, tenant, "ui/flow_runs/count-task-runs", {"flow_run_ids": ["x"]}).status_code == 422
        too_many = [str(uuid.uuid4()) for _ in range(201)]
        assert (
            post(dev, tenant, "ui/flow_runs/count-task-runs", {"flow_run_ids": too_many}).status_code == 422
        )

    def test_one_query_for_many_flow_runs(self, tenant, dev, world, django_assert_max_num_queries):
        flow = world.flow()
        runs = [world.run(flow, f"r{i}") for i in range(40)]
        for run in runs:
            world.task(run)
        with django_assert_max_num_queries(8):
            counts = post(
                dev, tenant, "ui/flow_runs/count-task-runs", {"flow_run_ids": [str(r.id) for r in runs]}
            )
        assert set(counts.json().values()) == {1}


class TestFlows:
    def test_count_deployments_and_next_runs(self, tenant, dev, world):
        etl, other, empty = world.flow("etl"), world.flow("other"), world.flow("empty")
        world.deployment(etl, "a"), world.deployment(etl, "b"), world.deployment(other, "c")
        ids = [str(etl.id), str(other.id), str(empty.id)]
        assert post(dev, tenant, "ui/flows/count-deployments", {"flow_ids": ids}).json() == {
            ids[0]: 2,
            ids[1]: 1,
            ids[2]: 0,
        }
        soon = world.run(etl, "soon", "SCHEDULED", next_scheduled_start_time=T0)
        world.run(etl, "later", "SCHEDULED", next_scheduled_start_time=T0 + dt.timedelta(hours=1))
        world.run(other, "running", "RUNNING", next_scheduled_start_time=T0)
        answer = post(dev, tenant, "ui/flows/next-runs", {"flow_ids": ids}).json()
        assert answer == {
            ids[0]: {"id": str(soon.id), "flow_id": ids[0], "name": "soon", "state_name": "Scheduled",
                     "state_type": "SCHEDULED", "next_scheduled_start_time": "2026-01-01T12:00:00Z"},
            ids[1]: None,
            ids[2]: None,
        }  # fmt: skip
        assert post(dev, tenant, "ui/flows/next-runs", {"flow_ids": "x"}).status_code == 422

    def test_next_runs_in_one_query(self, tenant, dev, world, django_assert_max_num_queries):
        flows = [world.flow(f"f{i}") for i in range(30)]
        for i, flow in enumerate(flows):
            for j in range(3):
                world.run(
                    flow, f"r{i}-{j}", "SCHEDULED", next_scheduled_start_time=T0 + dt.timedelta(minutes=j)
                )
        with django_assert_max_num_queries(8):
            answer = post(dev, tenant, "ui/flows/next-runs", {"flow_ids": [str(f.id) for f in flows]}).json()
        assert {v["name"].split("-")[1] for v in answer.values()} == {"0"}


class TestTaskRuns:
    def test_count_by_state(self, tenant, dev, world):
        flow = world.flow()
        run = world.run(flow)
        for state in ("COMPLETED", "COMPLETED", "FAILED", "RUNNING"):
            world.task(run, state)
        counts = post(dev, tenant, "ui/task_runs/count", {}).json()
        assert counts == {"COMPLETED": 2, "PENDING": 0, "RUNNING": 1, "FAILED": 1, "CANCELLED": 0, "CRASHED": 0,
                          "PAUSED": 0, "CANCELLING": 0, "SCHEDULED": 0}  # fmt: skip
        only_other = {"flows": {"name": {"any_": ["nope"]}}}
        assert sum(post(dev, tenant, "ui/task_runs/count", only_other).json().values()) == 0

    def test_dashboard_counts_in_twenty_buckets(self, tenant, dev, world):
        run = world.run(world.flow())
        after, before = T0, T0 + dt.timedelta(minutes=19, seconds=30)  # end of minute: 12:19:59.999999
        for minute, state in (
            (0, "COMPLETED"),
            (0, "FAILED"),
            (5, "CRASHED"),
            (19, "COMPLETED"),
            (7, "RUNNING"),
        ):
            world.task(run, state, start_time=T0 + dt.timedelta(minutes=minute, seconds=10))
        world.task(run, "COMPLETED", start_time=T0 - dt.timedelta(minutes=1))  # before the window
        body = {"task_runs": {"start_time": {"after_": after.isoformat(), "before_": before.isoformat()}}}
        buckets = post(dev, tenant, "ui/task_runs/dashboard/counts", body).json()
        assert len(buckets) == 20
        assert buckets[0] == {"completed": 1, "failed": 1}
        assert buckets[5] == {"completed": 0, "failed": 1}
        assert buckets[19] == {"completed": 1, "failed": 0}
        assert sum(b["completed"] + b["failed"] for b in buckets) == 4  # RUNNING is not terminal
        missing = post(dev, tenant, "ui/task_runs/dashboard/counts", {"task_runs": {}})
        assert (
            missing.status_code == 422
            and missing.json()["detail"] == "task_runs.start_time.after_ is required"
        )

    def test_dashboard_is_one_query(self, tenant, dev, world, django_assert_max_num_queries):
        run = world.run(world.flow())
        for i in range(60):
            world.task(run, "COMPLETED", start_time=timezone.now() - dt.timedelta(minutes=i))
        body = {"task_runs": {"start_time": {"after_": (timezone.now() - dt.timedelta(hours=2)).isoformat()}}}
        with django_assert_max_num_queries(8):
            buckets = post(dev, tenant, "ui/task_runs/dashboard/counts", body).json()
        assert sum(b["completed"] for b in buckets) == 60

    def test_task_run_with_its_flow_run_name(self, tenant, dev, world):
        run = world.run(world.flow(), "my-run")
        task = world.task(run)
        answer = dev.get(f"{tenant.prefix}/ui/task_runs/{task.id}")
        assert answer.status_code == 200
        assert answer.json()["flow_run_name"] == "my-run" and answer.json()["id"] == str(task.id)
        orphan = world.task(None)
        assert dev.get(f"{tenant.prefix}/ui/task_runs/{orphan.id}").json()["flow_run_name"] is None
        assert dev.get(f"{tenant.prefix}/ui/task_runs/{uuid.uuid4()}").json() == {"detail": "Task not found"}


class TestSchemaValidate:
    SCHEMA = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
        "required": ["n"],
    }

    def test_errors_in_prefects_shape_with_variables(self, tenant, dev, world):
        Variable.objects.for_workspace(world.ws).create(workspace_id=world.ws, name="count", value=3)
        ok = {"n": {"__prefect_kind": "workspace_variable", "variable_name": "count"}}
        assert post(dev, tenant, "ui/schemas/validate", {"schema": self.SCHEMA, "values": ok}).json() == {
            "errors": [], "valid": True,
        }  # fmt: skip
        bad = {"s": {"__prefect_kind": "workspace_variable", "variable_name": "nope"}}
        answer = post(dev, tenant, "ui/schemas/validate", {"schema": self.SCHEMA, "values": bad}).json()
        assert answer == {"errors": [{"property": "s", "errors": ["Variable 'nope' not found in workspace."]},
                                     {"property": "n", "errors": ["'n' is a required property"]}],
                          "valid": False}  # fmt: skip

    def test_invalid_schema_and_body(self, tenant, dev):
        bad_schema = post(dev, tenant, "ui/schemas/validate", {"schema": {"type": 5}, "values": {}})
        assert bad_schema.status_code == 422 and bad_schema.json()["detail"].startswith("Invalid schema:")
        assert post(dev, tenant, "ui/schemas/validate", {"values": {}}).status_code == 422

    def test_another_workspaces_variable_is_not_found(self, two_workspaces, api_client):
        a, b = two_workspaces
        Variable.objects.for_workspace(b.workspace.id).create(
            workspace_id=b.workspace.id, name="count", value=3
        )
        values = {"n": {"__prefect_kind": "workspace_variable", "variable_name": "count"}}
        answer = post(
            bearer(api_client, a.service_key),
            a,
            "ui/schemas/validate",
            {"schema": self.SCHEMA, "values": values},
        )
        assert answer.json()["valid"] is False


class TestTenancyAndScopes:
    def test_nothing_of_another_workspace(self, two_workspaces, api_client):
        a, b = two_workspaces
        wa = World(a)
        flow = wa.flow()
        run = wa.run(flow, "r", "SCHEDULED", next_scheduled_start_time=T0, expected_start_time=T0)
        task = wa.task(run, start_time=timezone.now())
        wa.deployment(flow, "d")
        as_b = bearer(api_client, b.service_key)
        assert post(as_b, b, "ui/flow_runs/history", {}).json() == []
        assert post(as_b, b, "ui/flow_runs/count-task-runs", {"flow_run_ids": [str(run.id)]}).json() == {
            str(run.id): 0
        }
        assert post(as_b, b, "ui/flows/count-deployments", {"flow_ids": [str(flow.id)]}).json() == {
            str(flow.id): 0
        }
        assert post(as_b, b, "ui/flows/next-runs", {"flow_ids": [str(flow.id)]}).json() == {
            str(flow.id): None
        }
        assert sum(post(as_b, b, "ui/task_runs/count", {}).json().values()) == 0
        assert as_b.get(f"{b.prefix}/ui/task_runs/{task.id}").status_code == 404

    def test_every_role_may_read_the_ui_routes(self, tenant, role_client):
        # Each route needs see_flows (see_variables for ui/schemas/validate), which every role holds;
        # tests/accounts/test_role_matrix.py refuses keys without them.
        viewer = role_client("viewer")
        assert post(viewer, tenant, "ui/task_runs/count", {}).status_code == 200
        worker = role_client("worker")
        assert post(worker, tenant, "ui/flows/count-deployments", {"flow_ids": []}).status_code == 200
        assert post(worker, tenant, "ui/task_runs/count", {}).status_code == 200
