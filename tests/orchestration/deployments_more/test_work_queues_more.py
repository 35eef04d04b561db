"""``POST work_queues/`` (the default agent pool, as Prefect's server does), the concurrency
statuses of a queue and of a pool, ``GET observed-states`` and ``flows/paginate``. Answers are
checked against the real client's (or Prefect's server's) response models."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.schemas.objects import WorkQueue as ClientWorkQueue
from prefect.client.schemas.responses import WorkPoolConcurrencyStatus, WorkQueueConcurrencyStatus
from prefect.server.schemas.observed_states import ObservedState
from prefect.server.schemas.responses import FlowPaginationResponse
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from orchestration.models import WorkPool, WorkQueue
from tests.conftest import bearer
from tests.orchestration.deployments_more.helpers import deploy, in_workspace, make_flow

pytestmark = pytest.mark.django_db


def _create(client, tenant, body):
    return client.post(f"{tenant.prefix}/work_queues/", body, format="json")


class TestCreateWorkQueue:
    def test_without_a_pool_it_goes_to_the_default_agent_pool_created_on_demand(self, tenant, dev):
        response = _create(
            dev, tenant, {"name": "etl", "description": None, "filter": None, "concurrency_limit": 2}
        )
        assert response.status_code == 201, response.content
        queue = ClientWorkQueue.model_validate(response.json())
        assert queue.work_pool_name == "default-agent-pool" and queue.priority == 2
        assert response.json()["active_slots"] == 0 and response.json()["status"] == "NOT_READY"
        pool = in_workspace(tenant, lambda: WorkPool.objects.get(name="default-agent-pool"))
        assert pool.type == "prefect-agent"
        assert in_workspace(tenant, lambda: sorted(WorkQueue.objects.values_list("name", flat=True))) == [
            "default",
            "etl",
        ]
        assert (
            AuditLogEntry.objects.filter(api_name="work-pool.created", workspace=tenant.workspace).count()
            == 1
        )
        again = _create(dev, tenant, {"name": "second"})
        assert again.status_code == 201 and again.json()["priority"] == 3

    def test_default_on_a_new_pool_is_the_pools_default_queue(self, tenant, dev):
        response = _create(dev, tenant, {"name": "default"})
        assert response.status_code == 201, response.content
        assert response.json()["name"] == "default" and response.json()["priority"] == 1
        # Once the pool is there, "default" is taken, as on Prefect's server.
        taken = _create(dev, tenant, {"name": "default"})
        assert (
            taken.status_code == 409
            and taken.json()["detail"] == "A work queue with this name already exists."
        )

    def test_a_taken_name_is_409_and_writes_nothing(self, tenant, dev):
        assert _create(dev, tenant, {"name": "etl"}).status_code == 201
        assert _create(dev, tenant, {"name": "etl"}).status_code == 409
        assert in_workspace(tenant, lambda: WorkQueue.objects.count()) == 2

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": ""},
            {"name": "a/b"},
            {"name": "x", "priority": 0},
            {"name": "x", "concurrency_limit": -1},
            [],
        ],
    )
    def test_a_bad_body_is_422_and_creates_no_pool(self, tenant, dev, body):
        assert _create(dev, tenant, body).status_code == 422
        assert in_workspace(tenant, lambda: WorkPool.objects.count()) == 0

    @pytest.mark.parametrize(
        ("role", "allowed"), [("viewer", False), ("runner", False), ("worker", False), ("developer", True)]
    )
    def test_scopes(self, tenant, role_client, role, allowed):
        response = _create(role_client(role), tenant, {"name": "etl"})
        assert response.status_code == (201 if allowed else 403), response.content
        assert in_workspace(tenant, lambda: WorkPool.objects.count()) == (1 if allowed else 0)

    def test_each_workspace_has_its_own_default_agent_pool(self, two_workspaces):
        a, b = two_workspaces
        a_client, b_client = bearer(APIClient(), a.service_key), bearer(APIClient(), b.service_key)
        first = _create(a_client, a, {"name": "etl"}).json()
        second = _create(b_client, b, {"name": "etl"}).json()
        assert first["work_pool_id"] != second["work_pool_id"]
        assert a_client.get(f"{a.prefix}/work_queues/{second['id']}").status_code == 404


def _running_run(client, tenant, deployment_id, state="RUNNING", **extra):
    response = client.post(
        f"{tenant.prefix}/deployments/{deployment_id}/create_flow_run",
        {"state": {"type": state, "name": state.title()}, **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def pool(tenant, dev):
    response = dev.post(
        f"{tenant.prefix}/work_pools/",
        {"name": "k8s", "type": "kubernetes", "concurrency_limit": 5},
        format="json",
    )
    assert response.status_code == 201, response.content
    dev.post(
        f"{tenant.prefix}/work_pools/k8s/queues", {"name": "high", "concurrency_limit": 3}, format="json"
    )
    return response.json()


class TestConcurrencyStatus:
    def test_a_queue(self, tenant, dev, pool):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), work_pool_name="k8s", work_queue_name="high")
        running = [_running_run(dev, tenant, deployment["id"]) for _ in range(3)]
        cancelling = _running_run(dev, tenant, deployment["id"], state="CANCELLING")
        _running_run(dev, tenant, deployment["id"], state="COMPLETED")
        queue_id = running[0]["work_queue_id"]
        url = f"{tenant.prefix}/work_queues/{queue_id}/concurrency_status"

        response = dev.post(url, {"page": 1, "limit": 3}, format="json")

        assert response.status_code == 200, response.content
        status = WorkQueueConcurrencyStatus.model_validate(response.json())
        assert (status.active_slots, status.count, status.concurrency_limit, status.pages) == (4, 4, 3, 2)
        holders = sorted(uuid.UUID(run["id"]) for run in [*running, cancelling])
        assert [run.id for run in status.flow_runs] == holders[:3]  # by id, as Prefect pages them
        assert all(run.time_in_current_state is not None for run in status.flow_runs)
        second = WorkQueueConcurrencyStatus.model_validate(
            dev.post(url, {"page": 2, "limit": 3}, format="json").json()
        )
        assert len(second.flow_runs) == 1 and second.page == 2
        # Prefect's defaults: page 1 of 200.
        assert dev.post(url, {}, format="json").json()["limit"] == 200

    def test_a_pool(self, tenant, dev, pool):
        flow_id = make_flow(dev, tenant)
        high = deploy(dev, tenant, flow_id, name="high", work_pool_name="k8s", work_queue_name="high")
        default = deploy(dev, tenant, flow_id, name="default", work_pool_name="k8s")
        for _ in range(3):
            _running_run(dev, tenant, high["id"])
        _running_run(dev, tenant, default["id"], state="PENDING")
        _running_run(dev, tenant, default["id"], state="CANCELLING")  # not a pool slot
        url = f"{tenant.prefix}/work_pools/k8s/concurrency_status"

        response = dev.post(url, {"flow_run_limit": 2}, format="json")

        assert response.status_code == 200, response.content
        status = WorkPoolConcurrencyStatus.model_validate(response.json())
        assert (status.active_slots, status.concurrency_limit, status.count, status.pages) == (4, 5, 2, 1)
        by_name = {queue.queue_name: queue for queue in status.queues}
        assert [queue.queue_name for queue in status.queues] == ["default", "high"]  # by priority
        assert by_name["high"].active_slots == 3 and by_name["high"].flow_run_count == 3
        assert len(by_name["high"].flow_runs) == 2 and by_name["high"].concurrency_limit == 3
        assert (
            by_name["default"].active_slots == 1
            and by_name["default"].flow_runs[0].state_type.value == "PENDING"
        )
        paged = dev.post(url, {"limit": 1, "page": 2}, format="json").json()
        assert [queue["queue_name"] for queue in paged["queues"]] == ["high"] and paged["pages"] == 2

    @pytest.mark.parametrize(
        "body", [{"page": 0}, {"limit": 201}, {"limit": -1}, {"flow_run_limit": 201}, {"page": "x"}, []]
    )
    def test_bad_bodies_are_422(self, tenant, dev, pool, body):
        queue_id = dev.get(f"{tenant.prefix}/work_pools/k8s/queues/high").json()["id"]
        assert (
            dev.post(
                f"{tenant.prefix}/work_queues/{queue_id}/concurrency_status", body, format="json"
            ).status_code
            == 422
        )
        assert (
            dev.post(f"{tenant.prefix}/work_pools/k8s/concurrency_status", body, format="json").status_code
            == 422
        )

    def test_unknown_and_another_workspaces_are_404(self, two_workspaces):
        a, b = two_workspaces
        a_client, b_client = bearer(APIClient(), a.service_key), bearer(APIClient(), b.service_key)
        b_client.post(f"{b.prefix}/work_pools/", {"name": "theirs"}, format="json")
        queue_id = b_client.get(f"{b.prefix}/work_pools/theirs/queues/default").json()["id"]
        missing = a_client.post(f"{a.prefix}/work_pools/theirs/concurrency_status", {}, format="json")
        assert missing.status_code == 404 and missing.json()["detail"] == "Work pool 'theirs' not found."
        missing = a_client.post(f"{a.prefix}/work_queues/{queue_id}/concurrency_status", {}, format="json")
        assert missing.status_code == 404 and missing.json()["detail"] == "Work queue not found."
        assert (
            a_client.post(
                f"{a.prefix}/work_queues/{uuid.uuid4()}/concurrency_status", {}, format="json"
            ).status_code
            == 404
        )
        assert (
            b_client.post(
                f"{b.prefix}/work_queues/{queue_id}/concurrency_status", {}, format="json"
            ).status_code
            == 200
        )

    @pytest.mark.parametrize("role", ["viewer", "worker", "runner"])
    def test_a_viewer_may_read(self, tenant, dev, pool, role_client, role):
        client = role_client(role)
        queue_id = dev.get(f"{tenant.prefix}/work_pools/k8s/queues/high").json()["id"]
        assert (
            client.post(
                f"{tenant.prefix}/work_queues/{queue_id}/concurrency_status", {}, format="json"
            ).status_code
            == 200
        )
        assert (
            client.post(f"{tenant.prefix}/work_pools/k8s/concurrency_status", {}, format="json").status_code
            == 200
        )


class TestObservedStates:
    def test_state_pairs_seen_by_runs(self, tenant, dev):
        deployment = deploy(dev, tenant, make_flow(dev, tenant))
        _running_run(dev, tenant, deployment["id"])
        _running_run(dev, tenant, deployment["id"], state="PENDING")
        dev.post(f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json")
        response = dev.get(f"{tenant.prefix}/observed-states")
        assert response.status_code == 200, response.content
        states = [ObservedState.model_validate(row) for row in response.json()]
        assert {(s.state_type, s.state_name) for s in states} == {
            ("RUNNING", "Running"),
            ("PENDING", "Pending"),
            ("SCHEDULED", "Scheduled"),
        }
        assert states[0].state_type == "SCHEDULED"  # the latest first
        by_name = dev.get(f"{tenant.prefix}/observed-states", {"order_by": "NAME_ASC"}).json()
        assert [row["state_type"] for row in by_name] == ["PENDING", "RUNNING", "SCHEDULED"]
        assert [
            row["state_name"] for row in dev.get(f"{tenant.prefix}/observed-states", {"query": "run"}).json()
        ] == ["Running"]
        assert len(dev.get(f"{tenant.prefix}/observed-states", {"limit": 1}).json()) == 1

    @pytest.mark.parametrize(
        "query", [{"limit": 0}, {"limit": 201}, {"order_by": "sideways"}, {"query": "x" * 101}]
    )
    def test_bad_queries_are_422(self, tenant, dev, query):
        assert dev.get(f"{tenant.prefix}/observed-states", query).status_code == 422

    def test_another_workspaces_states_are_not_seen(self, two_workspaces):
        a, b = two_workspaces
        a_client, b_client = bearer(APIClient(), a.service_key), bearer(APIClient(), b.service_key)
        deployment = deploy(b_client, b, make_flow(b_client, b))
        _running_run(b_client, b, deployment["id"])
        assert a_client.get(f"{a.prefix}/observed-states").json() == []
        assert b_client.get(f"{b.prefix}/observed-states").json() != []


class TestFlowsPaginate:
    def test_pages_of_flows(self, tenant, dev):
        for name in ("c", "a", "b"):
            make_flow(dev, tenant, name)
        response = dev.post(f"{tenant.prefix}/flows/paginate", {"limit": 2, "page": 2}, format="json")
        assert response.status_code == 200, response.content
        page = FlowPaginationResponse.model_validate(response.json())
        assert ([f.name for f in page.results], page.count, page.pages, page.page, page.limit) == (
            ["c"],
            3,
            2,
            2,
            2,
        )
        filtered = dev.post(
            f"{tenant.prefix}/flows/paginate",
            {"flows": {"name": {"any_": ["a"]}}, "sort": "NAME_DESC"},
            format="json",
        ).json()
        assert [f["name"] for f in filtered["results"]] == ["a"] and filtered["count"] == 1

    @pytest.mark.parametrize(
        "body", [{"page": 0}, {"limit": 201}, {"sort": "SIDEWAYS"}, {"flows": {"id": {"any_": ["x"]}}}]
    )
    def test_bad_bodies_are_422(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/flows/paginate", body, format="json").status_code == 422

    def test_another_workspaces_flows_are_not_listed(self, two_workspaces, role_client):
        a, b = two_workspaces
        a_client, b_client = bearer(APIClient(), a.service_key), bearer(APIClient(), b.service_key)
        make_flow(b_client, b)
        assert a_client.post(f"{a.prefix}/flows/paginate", {}, format="json").json()["count"] == 0

    def test_a_viewer_may_page(self, tenant, role_client):
        assert (
            role_client("viewer").post(f"{tenant.prefix}/flows/paginate", {}, format="json").status_code
            == 200
        )


class TestQueryCounts:
    """The list-like answers take the same number of queries however many rows they hold."""

    def _count(self, call) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        call()  # warm: the key's access memo is filled on the first request
        with CaptureQueriesContext(connection) as captured:
            response = call()
        assert response.status_code == 200, response.content
        return len(captured.captured_queries)

    def test_pool_and_queue_concurrency_status(self, tenant, dev, pool):
        deployment = deploy(dev, tenant, make_flow(dev, tenant), work_pool_name="k8s", work_queue_name="high")
        _running_run(dev, tenant, deployment["id"])
        queue_id = dev.get(f"{tenant.prefix}/work_pools/k8s/queues/high").json()["id"]

        def pool_status():
            return dev.post(f"{tenant.prefix}/work_pools/k8s/concurrency_status", {}, format="json")

        def queue_status():
            return dev.post(f"{tenant.prefix}/work_queues/{queue_id}/concurrency_status", {}, format="json")

        few = (self._count(pool_status), self._count(queue_status))
        for name in ("q3", "q4", "q5"):
            dev.post(f"{tenant.prefix}/work_pools/k8s/queues", {"name": name}, format="json")
        for _ in range(4):
            _running_run(dev, tenant, deployment["id"])
        assert (self._count(pool_status), self._count(queue_status)) == few

    def test_flows_paginate_and_observed_states(self, tenant, dev):
        make_flow(dev, tenant, "first")

        def page():
            return dev.post(f"{tenant.prefix}/flows/paginate", {}, format="json")

        def states():
            return dev.get(f"{tenant.prefix}/observed-states")

        few = (self._count(page), self._count(states))
        deployment = deploy(dev, tenant, make_flow(dev, tenant, "second"))
        for state in ("RUNNING", "PENDING", "COMPLETED"):
            _running_run(dev, tenant, deployment["id"], state=state)
        assert (self._count(page), self._count(states)) == few
