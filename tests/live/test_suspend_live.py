"""Suspend and resume of a served deployment's run, end to end with the real client: a run of a
deployment served with ``flow.serve`` calls ``suspend_flow_run``; the server makes it PAUSED
"Suspended" with reschedule and its process exits; ``resume_flow_run`` (with and without
``run_input``) makes it SCHEDULED "Resuming", the runner picks it up again, ``suspend_flow_run``
sees its pause already answered and the run completes. A suspension nobody resumes is failed once
its timeout passes (Prefect's ``FailExpiredPauses``, a Celery beat task here)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestration import tasks
from orchestration.models import FlowRunInput
from orchestration.services.lifecycle import PAUSE_EXPIRED_MESSAGE
from tests.live import test_deployments_live
from tests.live.conftest import FLOWS_DIR, wait_for
from tests.live.test_deployments_live import (
    explain,
    flow_states,
    get_run,
    pid_alive,
    run_id_from_cli,
    state_names,
    wait_deployment,
    wait_run,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

spawn = test_deployments_live.spawn

SCRIPT = str(FLOWS_DIR / "suspend_job.py")
RESUME = str(FLOWS_DIR / "pause_resume.py")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _lines(marker: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in marker.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _serve(spawn, asgi_server, live_tenant, name: str):
    served = spawn(
        [SCRIPT, "serve", "--name", name], env={"PREFECT_RUNNER_POLL_FREQUENCY": "1"}, name="serve"
    )
    assert wait_deployment(live_tenant.workspace, name, served) is not None, explain(
        asgi_server, live_tenant, served
    )
    return served


def _suspended(run_prefect, live_tenant, asgi_server, served, name: str, marker: Path, *params: str):
    """Run the deployment; wait until its run is suspended and its process has exited."""
    workspace = live_tenant.workspace
    argv = ["prefect", "deployment", "run", f"suspend-job/{name}", "--param", f"marker={marker}"]
    for param in params:
        argv += ["--param", param]
    launched = run_prefect(argv)
    run_id = run_id_from_cli(launched.output)
    assert launched.returncode == 0 and run_id, launched.describe()
    run = wait_run(workspace, run_id, {"PAUSED", *FINAL}, timeout=60)
    trail = explain(asgi_server, live_tenant, served, extra=str(state_names(workspace, run_id)))
    assert (run.state_type, run.state_name) == ("PAUSED", "Suspended"), trail
    details = run.state.state_details
    assert details["pause_reschedule"] is True and details["pause_timeout"] is not None, details
    (first,) = _lines(marker)
    assert first["flow_run_id"] == run_id
    served.adopt(first["pid"])
    # Suspended: the flow run's process is gone, nothing runs it until it is resumed.
    assert wait_for(lambda: pid_alive(first["pid"]), lambda alive: not alive, timeout=20) is False, trail
    return run


def test_a_suspended_served_run_is_resumed_and_completes(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path
):
    workspace = live_tenant.workspace
    served = _serve(spawn, asgi_server, live_tenant, "suspend-dep")
    marker = tmp_path / "marker.jsonl"
    run = _suspended(run_prefect, live_tenant, asgi_server, served, "suspend-dep", marker)

    resumed = run_prefect([RESUME, str(run.id), "null"])
    assert resumed.result is not None and resumed.result.get("resumed") is True, resumed.describe()
    run = wait_run(workspace, run.id, FINAL, timeout=60)
    trail = explain(asgi_server, live_tenant, served, extra=str(state_names(workspace, run.id)))
    assert run.state_type == "COMPLETED", trail
    names = state_names(workspace, run.id)
    # The runner submits it again (its "Submitting" Pending); suspend_flow_run proposes the same
    # pause key again, the server refuses it into Running, and the flow goes on.
    expected = ["Suspended", "Resuming", "Pending", "Submitting", "Running", "Completed"]
    assert names[names.index("Suspended") :] == expected, trail
    resuming = [s for s in flow_states(workspace, run.id) if s.name == "Resuming"][0]
    assert resuming.type == "SCHEDULED" and resuming.state_details["scheduled_time"] is not None
    lines = _lines(marker)
    assert len(lines) == 3 and lines[-1] == {"resumed": True}, lines
    assert lines[1]["flow_run_id"] == str(run.id) and lines[1]["pid"] != lines[0]["pid"], lines


def test_a_suspended_run_waiting_for_input_is_resumed_with_it(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path
):
    workspace = live_tenant.workspace
    served = _serve(spawn, asgi_server, live_tenant, "suspend-input-dep")
    marker = tmp_path / "marker.jsonl"
    run = _suspended(
        run_prefect, live_tenant, asgi_server, served, "suspend-input-dep", marker, "wait_for_input=true"
    )
    keyset = run.state.state_details["run_input_keyset"]
    assert keyset and set(keyset) >= {"schema", "response"}, run.state.state_details
    schema = wait_for(
        lambda: (
            FlowRunInput.objects.for_workspace(workspace.id)
            .filter(flow_run=run, key=keyset["schema"])
            .first()
        ),
        lambda row: row is not None,
    )
    assert schema is not None and json.loads(schema.value)["properties"]["approved"]["type"] == "boolean"

    # Input that does not fit is refused; the run stays suspended.
    bad = run_prefect([RESUME, str(run.id), json.dumps({"approved": "maybe"})])
    assert "Validation failed for field 'approved'" in (bad.result or {}).get("error", ""), bad.describe()
    assert get_run(workspace, run.id).state_name == "Suspended"

    good = run_prefect([RESUME, str(run.id), json.dumps({"approved": True, "note": "go"})])
    assert good.result is not None and good.result.get("resumed") is True, good.describe()
    run = wait_run(workspace, run.id, FINAL, timeout=60)
    trail = explain(asgi_server, live_tenant, served, extra=str(state_names(workspace, run.id)))
    assert run.state_type == "COMPLETED", trail
    assert _lines(marker)[-1] == {"resumed": True, "approved": True, "note": "go"}, trail
    stored = FlowRunInput.objects.for_workspace(workspace.id).get(flow_run=run, key=keyset["response"])
    assert json.loads(stored.value) == {"approved": True, "note": "go"}


def test_a_suspension_past_its_timeout_fails_the_run(asgi_server, live_tenant, run_prefect, spawn, tmp_path):
    workspace = live_tenant.workspace
    served = _serve(spawn, asgi_server, live_tenant, "suspend-timeout-dep")
    marker = tmp_path / "marker.jsonl"
    run = _suspended(
        run_prefect, live_tenant, asgi_server, served, "suspend-timeout-dep", marker, "timeout=3"
    )
    assert tasks.fail_expired_pauses() == 0  # not expired yet
    time.sleep(4)
    assert tasks.fail_expired_pauses() == 1
    run = get_run(workspace, run.id)
    assert (run.state_type, run.state.message) == ("FAILED", PAUSE_EXPIRED_MESSAGE)
    assert run.end_time is not None
    late = run_prefect([RESUME, str(run.id), "null"])
    assert (late.result or {}).get("error", "").startswith("NotPausedError"), late.describe()
    assert get_run(workspace, run.id).state_type == "FAILED"
    assert len(_lines(marker)) == 1  # never run again
