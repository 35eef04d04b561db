"""Workspace roles with the unmodified ``prefect`` CLI: a Runner's key can ``prefect deployment run``
but not ``prefect deployment delete``; a Worker's key can ``prefect worker start`` (it polls and
heartbeats, the pool becomes READY) and can neither run nor delete a deployment."""

from __future__ import annotations

import pytest

from accounts.api_keys.services import api_key_create
from accounts.services import workspace_access_grant
from audit.actors import SYSTEM
from orchestration.models import Deployment, FlowRun
from tests.factories import ServiceAccountFactory
from tests.live import test_deployments_live
from tests.live.conftest import wait_for
from tests.live.test_deployments_live import FLOW_NAME, explain, run_id_from_cli
from tests.live.test_workers_live import create_pool, deploy, online_workers, source_dir

spawn = test_deployments_live.spawn

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _key_with_role(live_tenant, role: str) -> str:
    robot = ServiceAccountFactory(account=live_tenant.account)
    workspace_access_grant(workspace=live_tenant.workspace, principal=robot, role=role, actor=SYSTEM)
    return api_key_create(owner=robot, name=role, actor=SYSTEM)[1]


def test_runner_runs_but_cannot_delete_and_worker_only_works(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path
):
    workspace = live_tenant.workspace
    create_pool(run_prefect, workspace, "proc-pool")
    deployment = deploy(run_prefect, workspace, source_dir(tmp_path), "rbac-dep", "proc-pool")
    name = f"{FLOW_NAME}/rbac-dep"
    runner, worker = _key_with_role(live_tenant, "runner"), _key_with_role(live_tenant, "worker")

    launched = run_prefect(["prefect", "deployment", "run", name], key=runner)
    assert launched.returncode == 0, launched.describe()
    run_id = run_id_from_cli(launched.output)
    assert run_id and FlowRun.objects.for_workspace(workspace.id).filter(id=run_id).exists()

    refused = run_prefect(["prefect", "deployment", "delete", name], key=runner)
    assert refused.returncode != 0, refused.describe()
    assert Deployment.objects.for_workspace(workspace.id).filter(id=deployment.id).exists()

    for argv in (["prefect", "deployment", "run", name], ["prefect", "deployment", "delete", name]):
        attempt = run_prefect(argv, key=worker)
        assert attempt.returncode != 0, attempt.describe()
    assert FlowRun.objects.for_workspace(workspace.id).count() == 1
    assert Deployment.objects.for_workspace(workspace.id).filter(id=deployment.id).exists()

    process = spawn(
        ["prefect", "worker", "start", "--pool", "proc-pool", "--name", "scoped-worker"],
        env={"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_HEARTBEAT_SECONDS": "2"},
        key=worker,
        name="scoped worker",
    )
    online = wait_for(
        lambda: online_workers(live_tenant, "proc-pool"), lambda names: "scoped-worker" in names, 40
    )
    assert online == ["scoped-worker"], explain(asgi_server, live_tenant, process)
