"""Cancelling a parent cancels its subflows, end to end with the real client and ``serve``.

* A subflow in the parent's own process: ``prefect flow-run cancel`` on the parent, and the runner's
  SIGTERM makes the client's engine cancel the subflow itself; the cleanup sweep finds nothing left.
* A subflow in another process (``run_deployment`` from the parent flow, run by the runner as a
  separate flow run linked by ``parent_task_run_id``): cancelling the parent leaves it RUNNING.
  The cancellation cleanup sweep (what Celery beat runs every 20 s, Prefect's
  ``CancellationCleanup``) moves it to CANCELLING, the runner hears of it on ``/events/out`` and
  kills it, and it ends CANCELLED, as against Prefect's own server."""

from __future__ import annotations

import pytest

from orchestration import tasks
from orchestration.models import FlowRun, FlowRunState, TaskRun
from orchestration.services.lifecycle import CANCELLED_BY_PARENT
from tests.live import test_deployments_live
from tests.live.conftest import FLOWS_DIR, wait_for
from tests.live.test_deployments_live import (
    explain,
    get_run,
    pid_alive,
    read_marker,
    run_id_from_cli,
    state_names,
    wait_deployment,
    wait_run,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

spawn = test_deployments_live.spawn

SCRIPT = str(FLOWS_DIR / "cancel_parent.py")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _serve(spawn, asgi_server, live_tenant):
    served = spawn([SCRIPT, "serve"], env={"PREFECT_RUNNER_POLL_FREQUENCY": "1"}, name="serve cancel")
    for name in ("cancel-dep", "child-dep", "deployed-parent-dep"):
        deployment = wait_deployment(live_tenant.workspace, name, served)
        assert deployment is not None, explain(asgi_server, live_tenant, served)
    return served


def _start(run_prefect, deployment: str, marker, served, asgi_server, live_tenant) -> tuple[str, dict]:
    """Run ``deployment`` from the CLI; wait for its subflow to start. The parent's id and the
    child's marker."""
    launched = run_prefect(["prefect", "deployment", "run", deployment, "--param", f"marker={marker}"])
    parent_id = run_id_from_cli(launched.output)
    assert launched.returncode == 0 and parent_id, launched.describe()
    started = wait_for(lambda: read_marker(marker), lambda m: m is not None, timeout=60)
    assert started is not None, explain(asgi_server, live_tenant, served)
    served.adopt(started["pid"])
    child = wait_run(live_tenant.workspace, started["flow_run_id"], {"RUNNING"}, timeout=15)
    assert child.state_type == "RUNNING", state_names(live_tenant.workspace, child.id)
    # The subflow's parent task run is a task run of the parent flow run.
    parent_task = TaskRun.objects.for_workspace(live_tenant.workspace.id).get(id=child.parent_task_run_id)
    assert str(parent_task.flow_run_id) == parent_id
    return parent_id, started


def _cancel(run_prefect, flow_run_id: str, served, asgi_server, live_tenant) -> None:
    workspace = live_tenant.workspace
    cancel = run_prefect(["prefect", "flow-run", "cancel", flow_run_id])
    assert cancel.returncode == 0, cancel.describe()
    parent = wait_run(workspace, flow_run_id, FINAL, timeout=30)
    trail = explain(asgi_server, live_tenant, served, extra=f"parent {state_names(workspace, flow_run_id)}")
    assert parent.state_type == "CANCELLED", trail


def test_a_subflow_in_the_parents_process_ends_cancelled(
    asgi_server,
    live_tenant,
    run_prefect,
    spawn,
    tmp_path,
):
    workspace = live_tenant.workspace
    served = _serve(spawn, asgi_server, live_tenant)
    marker = tmp_path / "child.json"
    parent_id, started = _start(
        run_prefect, "cancel-parent/cancel-dep", marker, served, asgi_server, live_tenant
    )
    assert started["parent_flow_run_id"] == parent_id and started["pid"] is not None
    _cancel(run_prefect, parent_id, served, asgi_server, live_tenant)
    child = wait_run(workspace, started["flow_run_id"], FINAL, timeout=15)
    assert child.state_type == "CANCELLED", state_names(workspace, child.id)
    assert tasks.cancel_children_of_cancelled_runs() == 0  # the client left nothing to clean up
    assert get_run(workspace, child.id).state_type == "CANCELLED"


def test_a_deployed_subflow_in_another_process_is_cancelled_by_the_cleanup(
    asgi_server,
    live_tenant,
    run_prefect,
    spawn,
    tmp_path,
):
    workspace = live_tenant.workspace
    served = _serve(spawn, asgi_server, live_tenant)
    marker = tmp_path / "child.json"
    parent_id, started = _start(
        run_prefect, "cancel-deployed-parent/deployed-parent-dep", marker, served, asgi_server, live_tenant
    )
    child_id = started["flow_run_id"]
    child = get_run(workspace, child_id)
    assert child.deployment_id is not None and child.parent_task_run_id is not None
    assert started["parent_flow_run_id"] == parent_id

    _cancel(run_prefect, parent_id, served, asgi_server, live_tenant)
    # The parent's process is gone; the child's, another process, runs on.
    child = get_run(workspace, child_id)
    assert child.state_type == "RUNNING", state_names(workspace, child_id)
    assert pid_alive(started["pid"])

    # The sweep: the deployed subflow goes to CANCELLING, its runner kills it and cancels it.
    assert tasks.cancel_children_of_cancelled_runs() >= 1
    child = wait_run(workspace, child_id, FINAL, timeout=30)
    trail = explain(asgi_server, live_tenant, served, extra=f"child {state_names(workspace, child_id)}")
    assert child.state_type == "CANCELLED", trail
    names = state_names(workspace, child_id)
    assert names[-2:] == ["Cancelling", "Cancelled"], trail
    cancelling = [s for s in FlowRunState.objects.for_workspace(workspace.id).filter(flow_run_id=child_id)
                  if s.type == "CANCELLING"]  # fmt: skip
    assert [s.message for s in cancelling] == [CANCELLED_BY_PARENT], trail
    assert wait_for(lambda: pid_alive(started["pid"]), lambda alive: not alive, timeout=15) is False, trail
    parent_task = TaskRun.objects.for_workspace(workspace.id).get(id=child.parent_task_run_id)
    assert parent_task.state_type == "CANCELLED"

    # The real client finds the subflow from its parent task run and reads it cancelled.
    check = run_prefect(["prefect", "flow-run", "ls", "--state", "CANCELLED"])
    assert check.returncode == 0 and child.name in check.stdout, check.describe()
    runs = FlowRun.objects.for_workspace(workspace.id).filter(parent_task_run_id=parent_task.id)
    assert [str(run.id) for run in runs] == [child_id]
