"""Cancelling a parent cancels its subflows (Prefect's ``CancellationCleanup`` service): once a flow
run is CANCELLED, the periodic sweep cancels its unfinished task runs and every subflow run still
pending, scheduled, running, paused or cancelling whose parent task run is one of its task runs,
level after level; a subflow with a deployment goes to CANCELLING for its runner to stop. The parent
task run and its subflow find each other both ways through Prefect's routes."""

from __future__ import annotations

import pytest

from orchestration import tasks
from orchestration.models import FlowRun, TaskRun
from orchestration.services.lifecycle import CANCELLED_BY_PARENT, cancellation_cleanup
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _task_run(client, prefix, flow_run_id, key: str) -> dict:
    answer = client.post(
        f"{prefix}/task_runs/",
        {"flow_run_id": flow_run_id, "task_key": key, "dynamic_key": "0", "state": {"type": "RUNNING"}},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def _set(client, prefix, flow_run_id, state_type: str, force: bool = False) -> dict:
    answer = client.post(
        f"{prefix}/flow_runs/{flow_run_id}/set_state",
        {"state": {"type": state_type}, "force": force},
        format="json",
    )
    assert answer.status_code in (200, 201), answer.content
    return answer.json()


def _cancel(client, prefix, flow_run_id) -> None:
    assert _set(client, prefix, flow_run_id, "CANCELLING")["status"] == "ACCEPT"
    assert _set(client, prefix, flow_run_id, "CANCELLED", force=True)["status"] == "ACCEPT"


def _flow_run(client, prefix, flow_run_id) -> dict:
    return client.get(f"{prefix}/flow_runs/{flow_run_id}").json()


def _task(client, prefix, task_run_id) -> dict:
    return client.get(f"{prefix}/task_runs/{task_run_id}").json()


@pytest.fixture
def family(tenant, dev, make_flow_run):
    """parent (RUNNING) → task ``sub`` → subflow ``child`` (RUNNING) → task ``subsub`` → subflow
    ``grandchild`` (PENDING); and an ordinary task run of the parent."""
    p = tenant.prefix
    parent = make_flow_run("RUNNING")
    sub = _task_run(dev, p, parent["id"], "sub")
    plain = _task_run(dev, p, parent["id"], "plain")
    child = make_flow_run("RUNNING", parent_task_run_id=sub["id"])
    subsub = _task_run(dev, p, child["id"], "subsub")
    grandchild = make_flow_run("PENDING", parent_task_run_id=subsub["id"])
    return {
        "parent": parent,
        "sub": sub,
        "plain": plain,
        "child": child,
        "subsub": subsub,
        "grandchild": grandchild,
    }


class TestCleanup:
    def test_a_cancelled_parent_cancels_its_subflows_and_task_runs(self, tenant, dev, family):
        p = tenant.prefix
        assert cancellation_cleanup() == 0  # nothing is cancelled yet
        _cancel(dev, p, family["parent"]["id"])
        # The transition itself leaves the children alone; the sweep finds them.
        assert _flow_run(dev, p, family["child"]["id"])["state_type"] == "RUNNING"

        assert cancellation_cleanup() >= 3
        for key in ("child", "grandchild"):
            run = _flow_run(dev, p, family[key]["id"])
            assert run["state_type"] == "CANCELLED", (key, run["state"])
            assert run["state"]["message"] == CANCELLED_BY_PARENT
        for key in ("plain", "sub", "subsub"):
            task = _task(dev, p, family[key]["id"])
            assert task["state_type"] == "CANCELLED", (key, task["state"])
        # The subflows' parent task runs name their child flow runs (mirrored from the subflow).
        assert (
            _task(dev, p, family["sub"]["id"])["state"]["state_details"]["child_flow_run_id"]
            == (family["child"]["id"])
        )
        assert cancellation_cleanup() == 0  # done: a second sweep changes nothing

    def test_the_celery_task_runs_the_sweep(self, tenant, dev, family):
        _cancel(dev, tenant.prefix, family["parent"]["id"])
        assert tasks.cancel_children_of_cancelled_runs() >= 3
        assert _flow_run(dev, tenant.prefix, family["grandchild"]["id"])["state_type"] == "CANCELLED"

    def test_finished_subflows_and_subflows_of_live_parents_are_left_alone(self, tenant, dev, make_flow_run):
        p = tenant.prefix
        parent = make_flow_run("RUNNING")
        done = make_flow_run("COMPLETED", parent_task_run_id=_task_run(dev, p, parent["id"], "a")["id"])
        other_parent = make_flow_run("RUNNING")
        alive = make_flow_run("RUNNING", parent_task_run_id=_task_run(dev, p, other_parent["id"], "b")["id"])
        _cancel(dev, p, parent["id"])
        cancellation_cleanup()
        assert _flow_run(dev, p, done["id"])["state_type"] == "COMPLETED"
        assert _flow_run(dev, p, alive["id"])["state_type"] == "RUNNING"

    def test_a_deployed_subflow_goes_to_cancelling_for_its_runner(self, tenant, dev, make_flow_run):
        p = tenant.prefix
        parent = make_flow_run("RUNNING")
        flow = dev.post(f"{p}/flows/", {"name": "deployed"}, format="json").json()
        deployment = dev.post(f"{p}/deployments/", {"name": "d", "flow_id": flow["id"]}, format="json")
        assert deployment.status_code in (200, 201), deployment.content
        sub = _task_run(dev, p, parent["id"], "deployed-sub")
        child = dev.post(
            f"{p}/deployments/{deployment.json()['id']}/create_flow_run",
            {"parent_task_run_id": sub["id"], "state": {"type": "SCHEDULED"}},
            format="json",
        ).json()
        _set(dev, p, child["id"], "PENDING")
        _set(dev, p, child["id"], "RUNNING")
        _cancel(dev, p, parent["id"])
        cancellation_cleanup()
        run = _flow_run(dev, p, child["id"])
        assert (run["state_type"], run["state"]["message"]) == ("CANCELLING", CANCELLED_BY_PARENT)
        cancellation_cleanup()  # already cancelling: left to its runner
        states = dev.get(f"{p}/flow_run_states/", {"flow_run_id": child["id"]}).json()
        assert [s["type"] for s in states].count("CANCELLING") == 1

    def test_another_workspaces_subflow_is_never_touched(self, two_workspaces, api_client):
        """A run of workspace B that names A's task run as its parent is not A's subflow."""
        from rest_framework.test import APIClient

        a, b = two_workspaces
        dev_a, dev_b = bearer(api_client, a.service_key), bearer(APIClient(), b.service_key)
        flow_a = dev_a.post(f"{a.prefix}/flows/", {"name": "f"}, format="json").json()
        parent = dev_a.post(
            f"{a.prefix}/flow_runs/", {"flow_id": flow_a["id"], "state": {"type": "RUNNING"}}, format="json"
        ).json()
        sub = _task_run(dev_a, a.prefix, parent["id"], "sub")
        flow_b = dev_b.post(f"{b.prefix}/flows/", {"name": "f"}, format="json").json()
        stranger = dev_b.post(
            f"{b.prefix}/flow_runs/",
            {"flow_id": flow_b["id"], "state": {"type": "RUNNING"}, "parent_task_run_id": sub["id"]},
            format="json",
        ).json()
        _cancel(dev_a, a.prefix, parent["id"])
        cancellation_cleanup()
        assert FlowRun.objects.for_workspace(b.workspace.id).get(id=stranger["id"]).state_type == "RUNNING"
        assert TaskRun.objects.for_workspace(a.workspace.id).get(id=sub["id"]).state_type == "CANCELLED"


class TestLinks:
    def test_the_parent_task_run_and_its_subflow_find_each_other(self, tenant, dev, family):
        p = tenant.prefix
        child = _flow_run(dev, p, family["child"]["id"])
        assert child["parent_task_run_id"] == family["sub"]["id"]
        # Task run → subflow: Prefect's flow-run filter on parent_task_run_id.
        found = dev.post(
            f"{p}/flow_runs/filter",
            {"flow_runs": {"parent_task_run_id": {"any_": [family["sub"]["id"]]}}},
            format="json",
        ).json()
        assert [run["id"] for run in found] == [family["child"]["id"]]
        # The parent flow run's task runs that are subflow parents (``subflow_runs.exists_``).
        body = {
            "task_runs": {
                "flow_run_id": {"any_": [family["parent"]["id"]]},
                "subflow_runs": {"exists_": True},
            }
        }
        parents = dev.post(f"{p}/task_runs/filter", body, format="json").json()
        assert [task["id"] for task in parents] == [family["sub"]["id"]]
        body["task_runs"]["subflow_runs"] = {"exists_": False}
        plain = dev.post(f"{p}/task_runs/filter", body, format="json").json()
        assert [task["id"] for task in plain] == [family["plain"]["id"]]
        bad = dev.post(
            f"{p}/task_runs/filter", {"task_runs": {"subflow_runs": {"exists_": "x"}}}, format="json"
        )
        assert bad.status_code == 422
