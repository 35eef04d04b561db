"""Flow runs over the wire: create, read, change state, filter; roles and bad input."""

from __future__ import annotations

import uuid

import pytest

from orchestration.models import FlowRun, FlowRunState

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow_id(tenant, dev):
    return dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]


def _create(dev, tenant, flow_id, **extra):
    body = {"flow_id": flow_id, "parameters": {"x": 1}, "tags": ["t"], "empirical_policy": {"retries": 1,
            "retry_delay": 0}, **extra}  # fmt: skip
    return dev.post(f"{tenant.prefix}/flow_runs/", body, format="json")


def _set_state(dev, tenant, run_id, state_type, name=None, **extra):
    state = {"type": state_type, "name": name, "message": None, "state_details": {}, "data": None, **extra}
    return dev.post(
        f"{tenant.prefix}/flow_runs/{run_id}/set_state", {"state": state, "force": False}, format="json"
    )


class TestCreateAndRead:
    def test_create_gives_a_pending_run_in_prefects_shape(self, tenant, dev, flow_id):
        response = _create(dev, tenant, flow_id)
        assert response.status_code == 201
        run = response.json()
        assert run["state"]["type"] == "PENDING" and run["state_type"] == "PENDING"
        assert run["state_id"] == run["state"]["id"]
        assert run["state"]["state_details"]["flow_run_id"] == run["id"]
        assert run["labels"]["prefect.flow.id"] == flow_id
        assert run["name"] and "-" in run["name"]
        assert run["empirical_policy"]["retries"] == 1
        assert run["expected_start_time"] is not None and run["run_count"] == 0
        assert dev.get(f"{tenant.prefix}/flow_runs/{run['id']}").json()["id"] == run["id"]

    def test_unknown_flow_is_404_and_writes_nothing(self, tenant, dev):
        assert _create(dev, tenant, str(uuid.uuid4())).status_code == 404
        assert not FlowRun.objects.for_workspace(tenant.workspace.id).exists()

    def test_another_workspaces_flow_cannot_be_used(self, two_workspaces, api_client):
        from tests.conftest import bearer

        a, b = two_workspaces
        b_flow = (
            bearer(api_client, b.service_key).post(f"{b.prefix}/flows/", {"name": "x"}, format="json").json()
        )
        response = bearer(api_client, a.service_key).post(
            f"{a.prefix}/flow_runs/", {"flow_id": b_flow["id"]}, format="json"
        )
        assert response.status_code == 404
        assert not FlowRun.objects.unscoped().exists()

    def test_idempotency_key_returns_the_same_run(self, tenant, dev, flow_id):
        first = _create(dev, tenant, flow_id, idempotency_key="k1")
        second = _create(dev, tenant, flow_id, idempotency_key="k1")
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]

    @pytest.mark.parametrize(
        "body", [{}, {"flow_id": "nope"}, {"flow_id": None}, {"flow_id": "x", "parameters": []}]
    )
    def test_bad_bodies(self, tenant, dev, body):
        assert dev.post(f"{tenant.prefix}/flow_runs/", body, format="json").status_code == 422


class TestStateChanges:
    def test_lifecycle(self, tenant, dev, flow_id):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        running = _set_state(dev, tenant, run_id, "RUNNING", transition_id=None)
        assert running.status_code == 201
        assert running.json()["status"] == "ACCEPT" and running.json()["details"] == {
            "type": "accept_details"
        }
        done = _set_state(dev, tenant, run_id, "COMPLETED")
        assert done.json()["status"] == "ACCEPT"
        run = dev.get(f"{tenant.prefix}/flow_runs/{run_id}").json()
        assert (run["state_type"], run["run_count"]) == ("COMPLETED", 1)
        assert run["start_time"] and run["end_time"] and run["total_run_time"] >= 0
        history = FlowRunState.objects.for_workspace(tenant.workspace.id).filter(flow_run_id=run_id)
        assert [s.type for s in history.order_by("timestamp")] == ["PENDING", "RUNNING", "COMPLETED"]

    def test_pending_to_pending_is_aborted(self, tenant, dev, flow_id):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        response = _set_state(dev, tenant, run_id, "PENDING")
        assert response.status_code == 200
        assert response.json()["status"] == "ABORT" and response.json()["details"]["type"] == "abort_details"

    def test_retry_is_rejected_into_awaiting_retry(self, tenant, dev, flow_id):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        _set_state(dev, tenant, run_id, "RUNNING")
        failed = _set_state(dev, tenant, run_id, "FAILED", message="boom").json()
        assert failed["status"] == "REJECT"
        assert (failed["state"]["type"], failed["state"]["name"]) == ("SCHEDULED", "AwaitingRetry")
        assert failed["state"]["state_details"]["scheduled_time"]

    def test_bad_state_body_is_422_and_changes_nothing(self, tenant, dev, flow_id):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        response = dev.post(
            f"{tenant.prefix}/flow_runs/{run_id}/set_state", {"state": {"type": "EXPLODED"}}, format="json"
        )
        assert response.status_code == 422
        assert dev.get(f"{tenant.prefix}/flow_runs/{run_id}").json()["state_type"] == "PENDING"

    def test_unknown_run_is_404(self, tenant, dev):
        assert _set_state(dev, tenant, uuid.uuid4(), "RUNNING").status_code == 404


class TestUpdateAndDelete:
    def test_patch_labels_delete(self, tenant, dev, flow_id):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        assert dev.patch(f"{tenant.prefix}/flow_runs/{run_id}", {"name": "renamed", "infrastructure_pid": "42"},
                         format="json").status_code == 204  # fmt: skip
        assert (
            dev.patch(
                f"{tenant.prefix}/flow_runs/{run_id}/labels", {"team": "data"}, format="json"
            ).status_code
            == 204
        )
        run = dev.get(f"{tenant.prefix}/flow_runs/{run_id}").json()
        assert (run["name"], run["infrastructure_pid"], run["labels"]["team"]) == ("renamed", "42", "data")
        assert run["labels"]["prefect.flow.id"] == flow_id
        assert dev.delete(f"{tenant.prefix}/flow_runs/{run_id}").status_code == 204
        assert dev.get(f"{tenant.prefix}/flow_runs/{run_id}").status_code == 404


class TestFilter:
    def test_filter_count_and_cross_kind_filters(self, tenant, dev, flow_id):
        other_flow = dev.post(f"{tenant.prefix}/flows/", {"name": "other"}, format="json").json()["id"]
        runs = [_create(dev, tenant, flow_id).json()["id"] for _ in range(3)]
        _create(dev, tenant, other_flow)
        _set_state(dev, tenant, runs[0], "RUNNING")
        p = tenant.prefix
        read = lambda body: dev.post(f"{p}/flow_runs/filter", body, format="json").json()
        assert len(read({})) == 4
        assert [r["id"] for r in read({"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}})] == [runs[0]]
        assert len(read({"flows": {"name": {"any_": ["etl"]}}})) == 3
        assert len(read({"flow_runs": {"id": {"not_any_": runs}}})) == 1
        assert len(read({"flow_runs": {"tags": {"all_": ["t"]}}, "limit": 2})) == 2
        assert read({"deployments": {"id": {"any_": [str(uuid.uuid4())]}}}) == []
        assert dev.post(f"{p}/flow_runs/count", {"flow_runs": {"state": {"type": {"not_any_": ["RUNNING"]}}}},
                        format="json").json() == 3  # fmt: skip
        newest = read({"sort": "EXPECTED_START_TIME_DESC", "limit": 1})[0]
        assert newest["id"] in runs + [r["id"] for r in read({"flows": {"name": {"any_": ["other"]}}})]

    def test_filter_query_count_does_not_grow_with_rows(
        self, tenant, dev, flow_id, django_assert_max_num_queries
    ):
        for _ in range(5):
            _create(dev, tenant, flow_id)
        with django_assert_max_num_queries(12):
            assert len(dev.post(f"{tenant.prefix}/flow_runs/filter", {}, format="json").json()) == 5


class TestRoles:
    def test_viewer_reads_but_cannot_create_or_change_state(self, tenant, dev, flow_id, role_client):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        viewer = role_client("viewer")
        assert viewer.get(f"{tenant.prefix}/flow_runs/{run_id}").status_code == 200
        assert _create(viewer, tenant, flow_id).status_code == 403
        assert _set_state(viewer, tenant, run_id, "RUNNING").status_code == 403
        assert FlowRun.objects.for_workspace(tenant.workspace.id).count() == 1
        assert FlowRunState.objects.for_workspace(tenant.workspace.id).count() == 1

    def test_worker_moves_runs_but_cannot_delete(self, tenant, dev, flow_id, role_client):
        run_id = _create(dev, tenant, flow_id).json()["id"]
        worker = role_client("worker")
        assert _set_state(worker, tenant, run_id, "RUNNING").json()["status"] == "ACCEPT"
        assert worker.delete(f"{tenant.prefix}/flow_runs/{run_id}").status_code == 403
