"""Pausing for input and resuming, end to end with the real client: a flow paused with
``pause_flow_run(wait_for_input=…)`` is resumed from another process with ``resume_flow_run``,
input that does not fit is refused with Prefect's error, a pause nobody answers fails the run, and
two flows talk through ``send_input``/``receive_input``. Each check is on what the server stored
and on what the client saw."""

from __future__ import annotations

import json
import threading

import pytest

from orchestration.models import FlowRun, FlowRunInput, FlowRunState
from tests.live.conftest import FLOWS_DIR, make_live_tenant, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def script(name: str) -> str:
    """A flow script given with arguments (a list) is run as ``python <path> …``."""
    return str(FLOWS_DIR / name)


class Background:
    """A ``run_prefect`` call in a thread (the paused flow blocks until it is resumed)."""

    def __init__(self, run_prefect, *args, **kwargs):
        self.run = None
        self.thread = threading.Thread(target=self._go, args=(run_prefect, args, kwargs), daemon=True)
        self.thread.start()

    def _go(self, run_prefect, args, kwargs):
        self.run = run_prefect(*args, **kwargs)

    def join(self, timeout: float = 150):
        self.thread.join(timeout)
        assert self.run is not None, "the background client did not finish"
        return self.run


def _runs(workspace, flow_name: str) -> list[FlowRun]:
    return list(FlowRun.objects.for_workspace(workspace.id).filter(flow__name=flow_name))


def _paused_with_schema(workspace, flow_name: str, server) -> FlowRun:
    """Wait until the flow's run is PAUSED and has stored its input schema (the client stores it
    right after the pause is accepted)."""

    def fetch():
        runs = _runs(workspace, flow_name)
        if len(runs) != 1 or runs[0].state_type != "PAUSED":
            return None
        has_schema = FlowRunInput.objects.for_workspace(workspace.id).filter(
            flow_run=runs[0], key__endswith="-schema"
        )
        return runs[0] if has_schema.exists() else None

    run = wait_for(fetch, lambda value: value is not None, timeout=60)
    assert run is not None, f"no paused run of {flow_name} with a schema\n{server.trail()}"
    return run


def _states(workspace, run_id) -> list[tuple[str, str]]:
    rows = FlowRunState.objects.for_workspace(workspace.id).filter(flow_run_id=run_id)
    return [(s.type, s.name) for s in rows.order_by("timestamp", "created")]


def test_pause_for_input_resumed_from_another_process(run_prefect, live_tenant, asgi_server):
    workspace = live_tenant.workspace
    paused = Background(run_prefect, [script("pause_wait_for_input.py"), "120"])
    run = _paused_with_schema(workspace, "live-pause-for-input", asgi_server)
    schema_key = (
        FlowRunInput.objects.for_workspace(workspace.id).get(flow_run=run, key__endswith="-schema").key
    )
    schema = json.loads(FlowRunInput.objects.for_workspace(workspace.id).get(key=schema_key).value)
    assert schema["properties"]["approved"]["type"] == "boolean"

    # Input that does not fit the schema: refused with Prefect's reason, the run stays paused.
    bad = run_prefect([script("pause_resume.py"), str(run.id), json.dumps({"approved": "maybe"})])
    assert bad.result is not None, bad.describe()
    assert bad.result["error"] == (
        "RuntimeError: Cannot resume this run: Reason: Validation failed for field 'approved'. "
        "Failure reason: 'maybe' is not of type 'boolean'"
    ), bad.describe()
    assert FlowRun.objects.for_workspace(workspace.id).get(id=run.id).state_type == "PAUSED"

    # A viewer's key cannot resume it.
    viewer = run_prefect(
        [script("pause_resume.py"), str(run.id), json.dumps({"approved": True})], key=live_tenant.viewer_key
    )
    assert "403" in viewer.result["error"], viewer.describe()
    assert FlowRun.objects.for_workspace(workspace.id).get(id=run.id).state_type == "PAUSED"

    # Another workspace's key, in its own workspace, does not find the run.
    stranger = make_live_tenant(asgi_server.url)
    elsewhere = run_prefect(
        [script("pause_resume.py"), str(run.id), json.dumps({"approved": True})],
        key=stranger.developer_key,
        api_url=stranger.api_url,
    )
    assert elsewhere.result["error"].startswith("ObjectNotFound"), elsewhere.describe()
    assert elsewhere.result["states"] == [], elsewhere.describe()
    assert FlowRun.objects.for_workspace(workspace.id).get(id=run.id).state_type == "PAUSED"

    good = run_prefect(
        [script("pause_resume.py"), str(run.id), json.dumps({"approved": True, "note": "ship it"})]
    )
    assert good.result == {**good.result, "resumed": True}, good.describe()
    # read_flow_run_states (GET flow_run_states/?flow_run_id=) and read_flow_run_state (GET
    # flow_run_states/{id}); the flow may already have finished by then.
    assert good.result["states"][:4] == [["PENDING", "Pending"], ["RUNNING", "Running"], ["PAUSED", "Paused"],
                                         ["RUNNING", "Running"]], good.describe()  # fmt: skip
    assert good.result["last_state"] == [good.result["last_state_id"], *good.result["states"][-1]]

    finished = paused.join()
    result = finished.result
    assert finished.returncode == 0 and result is not None, finished.describe()
    assert (result["type"], result["approved"], result["note"]) == ("COMPLETED", True, "ship it"), (
        finished.describe()
    )
    assert _states(workspace, run.id) == [
        ("PENDING", "Pending"), ("RUNNING", "Running"), ("PAUSED", "Paused"),
        ("RUNNING", "Running"), ("COMPLETED", "Completed"),
    ]  # fmt: skip
    stored = FlowRunInput.objects.for_workspace(workspace.id).get(
        key=schema_key.replace("-schema", "-response")
    )
    assert json.loads(stored.value) == {"approved": True, "note": "ship it"}


def test_a_pause_nobody_answers_fails_the_run(run_prefect, live_tenant):
    workspace = live_tenant.workspace
    finished = run_prefect([script("pause_wait_for_input.py"), "3"])
    result = finished.result
    assert result is not None and result["type"] == "FAILED", finished.describe()
    # The client raises FlowPauseTimeout in the flow and proposes FAILED; the pause is past its
    # timeout, so HandleResumingPausedFlows answers with its own Failed state, as Prefect's does.
    assert result["message"] == "The flow was failed and never resumed.", finished.describe()
    (run,) = _runs(workspace, "live-pause-for-input")
    assert [t for t, _ in _states(workspace, run.id)] == ["PENDING", "RUNNING", "PAUSED", "FAILED"]
    # Resuming now is refused by the client: the run is no longer paused.
    late = run_prefect([script("pause_resume.py"), str(run.id), json.dumps({"approved": True})])
    assert late.result["error"].startswith("NotPausedError"), late.describe()


def test_send_input_and_receive_input_between_two_flows(run_prefect, live_tenant):
    workspace = live_tenant.workspace
    receiver = Background(run_prefect, [script("pause_receiver.py"), "2"])
    (receiver_run,) = wait_for(
        lambda: [r for r in _runs(workspace, "live-input-receiver") if r.state_type == "RUNNING"],
        lambda runs: len(runs) == 1,
        timeout=60,
    )
    sender = run_prefect([script("pause_sender.py"), str(receiver_run.id), "hello", "world"])
    sent = sender.result
    assert sender.returncode == 0 and sent is not None and sent["type"] == "COMPLETED", sender.describe()
    assert sent["answers"] == ["ack: hello", "ack: world"], sender.describe()
    received = receiver.join().result
    assert received["type"] == "COMPLETED" and received["received"] == ["hello", "world"]
    assert received["senders"] == [f"prefect.flow-run.{sent['flow_run_id']}"] * 2
    inputs = FlowRunInput.objects.for_workspace(workspace.id)
    assert (
        inputs.filter(flow_run_id=receiver_run.id, key__startswith="strautomaticruninput-auto-").count() == 2
    )
    assert (
        inputs.filter(flow_run_id=sent["flow_run_id"], key__startswith="strautomaticruninput-auto-").count()
        == 2
    )
