"""The ``prefect flow-run`` CLI against this server: ``ls``, ``inspect``, ``logs`` and ``delete``
of a run the real client made, checked against what the server stores; a viewer key cannot
delete, and another workspace's key does not see the run."""

from __future__ import annotations

import json

import pytest

from orchestration.models import FlowRun, FlowRunState, Log
from tests.live.conftest import make_live_tenant, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _ok(run) -> dict:
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()
    return result


def test_flow_run_ls_inspect_logs_delete(run_prefect, live_tenant, asgi_server):
    workspace = live_tenant.workspace
    result = _ok(run_prefect("hello.py"))
    run_id = result["flow_run_id"]
    run = FlowRun.objects.for_workspace(workspace.id).get(id=run_id)
    logs = wait_for(
        lambda: list(Log.objects.for_workspace(workspace.id).filter(flow_run_id=run_id)),
        lambda rows: any("Finished in state" in row.message for row in rows),
    )
    assert logs, "the client shipped no logs"

    listing = run_prefect(["prefect", "flow-run", "ls"])
    assert listing.returncode == 0, listing.describe()
    assert run_id in listing.stdout and run.name in listing.stdout and "COMPLETED" in listing.stdout

    inspected = run_prefect(["prefect", "flow-run", "inspect", run_id, "-o", "json"])
    assert inspected.returncode == 0, inspected.describe()
    shown = json.loads(inspected.stdout)
    assert (shown["id"], shown["name"], shown["state"]["type"]) == (run_id, run.name, "COMPLETED")

    printed = run_prefect(["prefect", "flow-run", "logs", run_id])
    assert printed.returncode == 0, printed.describe()
    for row in logs:
        assert row.message.splitlines()[0] in printed.stdout, printed.describe()

    # A viewer may look but not delete; another workspace does not find the run.
    viewer = run_prefect(["prefect", "flow-run", "delete", run_id], key=live_tenant.viewer_key)
    assert viewer.returncode != 0 and "403" in viewer.output, viewer.describe()
    stranger = make_live_tenant(asgi_server.url)
    elsewhere = run_prefect(
        ["prefect", "flow-run", "inspect", run_id], key=stranger.developer_key, api_url=stranger.api_url
    )
    assert elsewhere.returncode != 0 and f"Flow run '{run_id}' not found!" in elsewhere.output
    elsewhere = run_prefect(
        ["prefect", "flow-run", "delete", run_id], key=stranger.developer_key, api_url=stranger.api_url
    )
    assert elsewhere.returncode != 0 and f"Flow run '{run_id}' not found!" in elsewhere.output
    assert FlowRun.objects.for_workspace(workspace.id).filter(id=run_id).exists()

    deleted = run_prefect(["prefect", "flow-run", "delete", run_id])
    assert deleted.returncode == 0 and f"Successfully deleted flow run '{run_id}'." in deleted.output, (
        deleted.describe()
    )
    assert not FlowRun.objects.for_workspace(workspace.id).filter(id=run_id).exists()
    assert not FlowRunState.objects.for_workspace(workspace.id).filter(flow_run_id=run_id).exists()
    assert not Log.objects.for_workspace(workspace.id).filter(flow_run_id=run_id).exists()

    again = run_prefect(["prefect", "flow-run", "delete", run_id])
    assert again.returncode != 0 and f"Flow run '{run_id}' not found!" in again.output, again.describe()
    gone = run_prefect(["prefect", "flow-run", "inspect", run_id])
    assert gone.returncode != 0 and "not found" in gone.output
