"""End to end: the unmodified ``prefect`` client, in subprocesses, against the live server.

Every scenario asserts on what the server stored (through the ORM, ``for_workspace``) and, where the
wire protocol matters, on the exchanges the server recorded. Failure messages carry the client's
output and the server's trail of requests and answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from orchestration.models import Event, Flow, FlowRun, FlowRunState, Log, TaskRun, TaskRunState
from tests.live.conftest import make_live_tenant, run_async, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _ok(run) -> dict:
    """The RESULT of a flow script that must have produced a final state."""
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()
    assert result.get("flow_run_id"), run.describe()
    return result


def _flow_run(workspace, flow_run_id) -> FlowRun:
    return FlowRun.objects.for_workspace(workspace.id).get(id=flow_run_id)


def _flow_states(workspace, flow_run_id) -> list[FlowRunState]:
    return list(
        FlowRunState.objects.for_workspace(workspace.id)
        .filter(flow_run_id=flow_run_id)
        .order_by("timestamp", "created")
    )


def _task_runs(workspace, flow_run_id) -> list[TaskRun]:
    return list(TaskRun.objects.for_workspace(workspace.id).filter(flow_run_id=flow_run_id))


def _task_state_names(workspace, task_run_id) -> list[str]:
    return list(
        TaskRunState.objects.for_workspace(workspace.id)
        .filter(task_run_id=task_run_id)
        .order_by("timestamp")
        .values_list("name", flat=True)
    )


def _all_task_states(workspace, flow_run_id) -> dict[str, list[str]]:
    return {str(tr.id): _task_state_names(workspace, tr.id) for tr in _task_runs(workspace, flow_run_id)}


def _wait_task_runs(workspace, flow_run_id, expected: int, final_states_each: int) -> list[TaskRun]:
    """Task runs arrive as events: wait until ``expected`` of them are terminal with all their
    states stored (or time out), then return them for exact assertions."""

    def settled(runs):
        return len(runs) >= expected and all(
            tr.state_type == "COMPLETED" and len(_task_state_names(workspace, tr.id)) >= final_states_each
            for tr in runs
        )

    return wait_for(lambda: _task_runs(workspace, flow_run_id), settled)


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------------------------------
# 0. the harness itself, on routes that exist from the start
# --------------------------------------------------------------------------------------------------


def test_harness_client_reaches_live_server(asgi_server, live_tenant, run_prefect):
    # The server thread sees what this test committed: the tenant and its key.
    answer = httpx.get(f"{live_tenant.api_url}/health", headers=_headers(live_tenant.developer_key))
    assert answer.status_code == 200, (answer.status_code, answer.text)
    assert answer.json() is True
    assert httpx.get(f"{live_tenant.api_url}/health").status_code == 401

    run = run_prefect("client_check.py")
    assert run.returncode == 0, run.describe()
    result = run.result
    assert result == {
        "api_url": live_tenant.api_url,
        "server_type": "CLOUD",
        "health_error": None,
        "version": "3.9.1",
    }, run.describe()
    hits = {(ex.method, ex.path.replace(live_tenant.prefix, "W"), ex.status) for ex in asgi_server.exchanges}
    assert ("GET", "W/health", 200) in hits, run.trail
    assert ("GET", "W/admin/version", 200) in hits, run.trail


# --------------------------------------------------------------------------------------------------
# 1. 40 sequential tasks, with logs
# --------------------------------------------------------------------------------------------------


def test_flow_with_40_sequential_tasks(asgi_server, live_tenant, run_prefect):
    run = run_prefect("seq40.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["value"] == 40, run.describe()
    workspace = live_tenant.workspace
    # Cloud mode: the events client authenticates with the key in the upgrade request.
    sockets = [
        ex for ex in asgi_server.exchanges if ex.kind == "websocket" and ex.path.endswith("/events/in")
    ]
    assert sockets and all(ex.status == 101 and ex.has_authorization for ex in sockets), run.trail

    runs = list(FlowRun.objects.for_workspace(workspace.id))
    assert [str(r.id) for r in runs] == [result["flow_run_id"]], run.describe()
    flow_run = runs[0]
    assert flow_run.state_type == "COMPLETED" and flow_run.state_name == "Completed", run.describe()
    assert flow_run.run_count == 1
    assert flow_run.flow.name == "live-seq40"
    assert [s.name for s in _flow_states(workspace, flow_run.id)] == ["Pending", "Running", "Completed"]

    task_runs = _wait_task_runs(workspace, flow_run.id, 40, 3)
    assert len(task_runs) == 40, f"{len(task_runs)} task runs recorded\n{run.describe()}"
    assert TaskRun.objects.for_workspace(workspace.id).count() == 40
    for task_run in task_runs:
        assert task_run.state_type == "COMPLETED", (task_run.id, task_run.state_type)
        assert task_run.run_count == 1, (task_run.id, task_run.run_count)
        assert task_run.name.startswith("inc-"), task_run.name
        assert _task_state_names(workspace, task_run.id) == ["Pending", "Running", "Completed"]
    assert TaskRunState.objects.for_workspace(workspace.id).count() == 120

    # Logs come in batches, the last one as the client exits.
    logs = wait_for(
        lambda: list(Log.objects.for_workspace(workspace.id).filter(flow_run_id=flow_run.id)),
        lambda rows: (
            sum(1 for r in rows if r.message.startswith("inc x=")) >= 40
            and any(r.message == "seq40 done total=40" for r in rows)
        ),
    )
    by_message = {}
    for row in logs:
        by_message.setdefault(row.message, []).append(row)
    assert "seq40 starting" in by_message, f"{[r.message for r in logs]}\n{run.describe()}"
    assert "seq40 done total=40" in by_message, f"{[r.message for r in logs]}\n{run.describe()}"
    for message in ("seq40 starting", "seq40 done total=40"):
        (row,) = by_message[message]
        assert row.task_run_id is None and row.name == "prefect.flow_runs" and row.level == 20
    task_logs = [r for r in logs if r.message.startswith("inc x=")]
    assert len(task_logs) == 40, [r.message for r in logs]
    assert {str(r.task_run_id) for r in task_logs} == {str(tr.id) for tr in task_runs}
    assert {r.message for r in task_logs} == {f"inc x={i}" for i in range(40)}
    assert all(r.name == "prefect.task_runs" for r in task_logs)


# --------------------------------------------------------------------------------------------------
# 2. .map over 40 inputs and 3 .submit
# --------------------------------------------------------------------------------------------------


def test_flow_with_map_and_submit(live_tenant, run_prefect):
    run = run_prefect("map40.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["value"] == sum(range(1, 41)) + 6, run.describe()
    workspace = live_tenant.workspace
    flow_run = _flow_run(workspace, result["flow_run_id"])
    assert flow_run.state_type == "COMPLETED"

    task_runs = _wait_task_runs(workspace, flow_run.id, 43, 3)
    assert len(task_runs) == 43, f"{len(task_runs)} task runs recorded\n{run.describe()}"
    assert TaskRun.objects.for_workspace(workspace.id).count() == 43
    names = sorted(tr.name.rsplit("-", 1)[0] for tr in task_runs)
    assert names == ["double"] * 3 + ["inc"] * 40
    assert len({(tr.task_key, tr.dynamic_key) for tr in task_runs}) == 43
    for task_run in task_runs:
        assert task_run.state_type == "COMPLETED"
        assert _task_state_names(workspace, task_run.id) == ["Pending", "Running", "Completed"]


# --------------------------------------------------------------------------------------------------
# 3. a task retried once
# --------------------------------------------------------------------------------------------------


def test_task_retry(live_tenant, run_prefect):
    run = run_prefect("task_retry.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["task_attempts"] == 2, run.describe()
    workspace = live_tenant.workspace
    flow_run = _flow_run(workspace, result["flow_run_id"])
    assert flow_run.state_type == "COMPLETED"

    task_runs = _wait_task_runs(workspace, flow_run.id, 1, 4)
    assert len(task_runs) == 1, f"{len(task_runs)} task runs recorded\n{run.describe()}"
    task_run = task_runs[0]
    assert task_run.state_type == "COMPLETED"
    assert task_run.run_count == 2
    assert _task_state_names(workspace, task_run.id) == ["Pending", "Running", "Retrying", "Completed"]
    retrying = TaskRunState.objects.for_workspace(workspace.id).get(task_run=task_run, name="Retrying")
    assert retrying.type == "RUNNING"


# --------------------------------------------------------------------------------------------------
# 4. a flow retried once: REJECT into AwaitingRetry, then WAIT, then run again
# --------------------------------------------------------------------------------------------------


def test_flow_retry(asgi_server, live_tenant, run_prefect):
    run = run_prefect("flow_retry.py")
    result = _ok(run)
    assert result["type"] == "COMPLETED" and result["attempts"] == 2, run.describe()
    workspace = live_tenant.workspace
    flow_run = _flow_run(workspace, result["flow_run_id"])
    assert flow_run.state_type == "COMPLETED"
    assert flow_run.run_count == 2

    states = _flow_states(workspace, flow_run.id)
    assert [s.name for s in states] == ["Pending", "Running", "AwaitingRetry", "Running", "Completed"], (
        run.describe()
    )
    awaiting = states[2]
    assert awaiting.type == "SCHEDULED"
    assert awaiting.state_details.get("scheduled_time"), awaiting.state_details
    assert not any(s.type == "FAILED" for s in states)

    # The wire: what each proposal was answered.
    exchanges = [
        ex
        for ex in asgi_server.exchanges
        if ex.method == "POST" and ex.path == f"{live_tenant.prefix}/flow_runs/{flow_run.id}/set_state"
    ]
    answers = []
    for ex in exchanges:
        proposed = ex.request_json()["state"]["type"]
        body = ex.response_json() or {}
        answers.append((proposed, body.get("status"), body))
    collapsed = []
    for proposed, status, body in answers:
        if collapsed and status == "WAIT" and collapsed[-1][1] == "WAIT":
            continue
        collapsed.append((proposed, status, body))
    assert [(p, s) for p, s, _ in collapsed] == [
        ("RUNNING", "ACCEPT"),
        ("FAILED", "REJECT"),
        ("RUNNING", "WAIT"),
        ("RUNNING", "ACCEPT"),
        ("COMPLETED", "ACCEPT"),
    ], run.trail
    reject = collapsed[1][2]
    assert reject["details"]["type"] == "reject_details"
    assert reject["state"]["type"] == "SCHEDULED" and reject["state"]["name"] == "AwaitingRetry"
    wait = collapsed[2][2]
    assert wait["details"]["type"] == "wait_details"
    assert isinstance(wait["details"]["delay_seconds"], int)


# --------------------------------------------------------------------------------------------------
# 5. a failing flow
# --------------------------------------------------------------------------------------------------


FAIL_MESSAGE = "live-flow-fail: the reactor is on fire (7f3a)"


def test_failing_flow(live_tenant, run_prefect):
    run = run_prefect("flow_fail.py")
    result = _ok(run)
    assert result["type"] == "FAILED", run.describe()
    workspace = live_tenant.workspace
    flow_run = _flow_run(workspace, result["flow_run_id"])
    assert flow_run.state_type == "FAILED" and flow_run.state_name == "Failed"
    assert flow_run.state is not None and FAIL_MESSAGE in (flow_run.state.message or ""), (
        flow_run.state and flow_run.state.message
    )
    states = _flow_states(workspace, flow_run.id)
    assert [s.name for s in states] == ["Pending", "Running", "Failed"]
    assert FAIL_MESSAGE in (states[-1].message or "")


# --------------------------------------------------------------------------------------------------
# 6. prefect cloud login, then the CLI in the same PREFECT_HOME
# --------------------------------------------------------------------------------------------------


def _create_run_over_api(api_url: str, key: str, flow_name: str) -> str:
    with httpx.Client(base_url=api_url, headers=_headers(key), timeout=10) as client:
        flow = client.post("/flows/", json={"name": flow_name, "tags": [], "labels": {}})
        assert flow.status_code in (200, 201), ("POST /flows/", flow.status_code, flow.text)
        created = client.post(
            "/flow_runs/",
            json={
                "flow_id": flow.json()["id"],
                "name": None,
                "state": {"type": "PENDING", "name": "Pending", "message": None, "data": None},
                "parameters": {},
                "context": {},
                "tags": [],
                "labels": {},
                "empirical_policy": {"retries": 0, "retry_delay": 0},
                "parent_task_run_id": None,
            },
        )
        assert created.status_code == 201, ("POST /flow_runs/", created.status_code, created.text)
        return created.json()["id"]


def test_cloud_login_then_cli(asgi_server, live_tenant, run_prefect, tmp_path):
    run_id = _create_run_over_api(live_tenant.api_url, live_tenant.developer_key, "live-listed")
    other = make_live_tenant(asgi_server.url)
    other_run_id = _create_run_over_api(other.api_url, other.developer_key, "live-listed")

    home = tmp_path / "login-home"
    login = run_prefect(
        [
            "prefect",
            "cloud",
            "login",
            "--key",
            live_tenant.developer_key,
            "--workspace",
            live_tenant.full_handle,
        ],
        home=home,
        api_url=None,
        key=None,
    )
    assert login.returncode == 0, login.describe()
    assert "Authenticated with Prefect Cloud" in login.stdout, login.describe()
    profiles = (home / "profiles.toml").read_text()
    assert live_tenant.api_url in profiles, profiles
    assert live_tenant.developer_key in profiles

    listing = run_prefect(["prefect", "flow-run", "ls", "-o", "json"], home=home, api_url=None, key=None)
    assert listing.returncode == 0, listing.describe()
    start = listing.stdout.find("[")
    assert start >= 0, listing.describe()
    listed = json.loads(listing.stdout[start:])
    ids = {row["id"] for row in listed}
    assert run_id in ids, listing.describe()
    assert other_run_id not in ids
    (row,) = [r for r in listed if r["id"] == run_id]
    assert row["state"]["type"] == "PENDING"


# --------------------------------------------------------------------------------------------------
# 7. refusals: Viewer key, another workspace, unauthenticated events, replayed events
# --------------------------------------------------------------------------------------------------


def test_viewer_key_cannot_start_a_flow_run(asgi_server, live_tenant, run_prefect):
    run = run_prefect("hello.py", key=live_tenant.viewer_key)
    result = run.result
    assert run.returncode != 0 and result is not None and "error" in result, run.describe()
    assert "403" in result["error"], run.describe()
    assert FlowRun.objects.for_workspace(live_tenant.workspace.id).count() == 0
    posts = [ex for ex in asgi_server.exchanges if ex.method == "POST"]
    assert any(ex.status == 403 for ex in posts), run.trail
    assert not any(ex.path.endswith("/flow_runs/") and (ex.status or 0) < 300 for ex in posts), run.trail


def test_key_of_one_workspace_pointed_at_another_gets_404(asgi_server, live_tenant, run_prefect):
    other = make_live_tenant(asgi_server.url)
    key_a = live_tenant.developer_key

    # Straight HTTP: the other workspace answers as if it did not exist.
    missing = f"{asgi_server.url}/api/accounts/{uuid.uuid4()}/workspaces/{uuid.uuid4()}"
    for path in ("/health", "/admin/version"):
        theirs = httpx.get(f"{other.api_url}{path}", headers=_headers(key_a))
        nowhere = httpx.get(f"{missing}{path}", headers=_headers(key_a))
        assert theirs.status_code == 404 and theirs.json() == {"detail": "Not Found"}, theirs.text
        assert (nowhere.status_code, nowhere.json()) == (theirs.status_code, theirs.json())
        assert httpx.get(f"{other.api_url}{path}", headers=_headers(other.developer_key)).status_code == 200
    refused = httpx.post(f"{other.api_url}/flows/", headers=_headers(key_a), json={"name": "intruder"})
    assert refused.status_code == 404, refused.text

    # The real client.
    run = run_prefect("hello.py", api_url=other.api_url, key=key_a)
    result = run.result
    assert run.returncode != 0 and result is not None and "error" in result, run.describe()
    assert "404" in result["error"] or "ObjectNotFound" in result["error"], run.describe()
    for tenant in (other, live_tenant):
        assert Flow.objects.for_workspace(tenant.workspace.id).count() == 0
        assert FlowRun.objects.for_workspace(tenant.workspace.id).count() == 0


def _heartbeat_event(flow_run_id, flow_id, event_id=None) -> dict:
    return {
        "occurred": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "event": "prefect.flow-run.heartbeat",
        "resource": {
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.name": "replayed-run",
            "prefect.state-name": "Running",
            "prefect.state-type": "RUNNING",
        },
        "related": [
            {
                "prefect.resource.id": f"prefect.flow.{flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": "replayed",
            }
        ],
        "payload": {},
        "id": str(event_id or uuid.uuid4()),
        "follows": None,
    }


def _task_run_events(flow_run_id, flow_id, task_run_id) -> list[dict]:
    """Pending, Running, Completed of one task run, shaped as the client sends them."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    steps = [("PENDING", "Pending", None, None), ("RUNNING", "Running", "PENDING", "Pending")]
    steps.append(("COMPLETED", "Completed", "RUNNING", "Running"))
    events, previous = [], None
    for i, (state_type, name, from_type, from_name) in enumerate(steps):
        occurred = start + timedelta(milliseconds=10 * i)
        stamp = occurred.isoformat()
        run_count = 0 if i == 0 else 1
        task_run = {
            "name": "replayed-3f2",
            "task_key": "replayed-1a2b3c4d",
            "dynamic_key": "0",
            "empirical_policy": {
                "max_retries": 0,
                "retry_delay_seconds": 0.0,
                "retries": 0,
                "retry_delay": 0,
            },
            "tags": [],
            "labels": {},
            "task_inputs": {},
            "run_count": run_count,
            "flow_run_run_count": 1,
            "expected_start_time": start.isoformat(),
        }
        if i >= 1:
            task_run["start_time"] = (start + timedelta(milliseconds=10)).isoformat()
        if i == 2:
            task_run["end_time"] = stamp
            task_run["total_run_time"] = 0.01
        event = {
            "occurred": stamp.replace("+00:00", "Z"),
            "event": f"prefect.task-run.{name}",
            "resource": {
                "prefect.resource.id": f"prefect.task-run.{task_run_id}",
                "prefect.resource.name": "replayed-3f2",
                "prefect.run-count": str(run_count),
                "prefect.state-message": "",
                "prefect.state-name": name,
                "prefect.state-timestamp": stamp,
                "prefect.state-type": state_type,
                "prefect.orchestration": "client",
            },
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                    "prefect.resource.role": "flow-run",
                    "prefect.resource.name": "replayed-run",
                },
                {
                    "prefect.resource.id": f"prefect.flow.{flow_id}",
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": "replayed",
                },
            ],
            "payload": {
                "intended": {"from": from_type, "to": state_type},
                "initial_state": None
                if from_type is None
                else {"type": from_type, "name": from_name, "message": "", "state_details": {}},
                "validated_state": {
                    "type": state_type,
                    "name": name,
                    "message": "",
                    "state_details": {"untrackable_result": True} if i == 2 else {},
                    "data": None,
                },
                "task_run": task_run,
            },
            "id": str(uuid.uuid4()),
            "follows": previous,
        }
        previous = event["id"]
        events.append(event)
    return events


async def _send_events_cloud_style(url: str, key: str, events: list[dict]) -> None:
    """As ``PrefectCloudEventsClient``: bearer header, no subprotocol, ping first, one event per
    frame, a ping/pong checkpoint at the end."""
    async with connect(url, additional_headers={"Authorization": f"bearer {key}"}, open_timeout=10) as ws:
        await (await ws.ping())
        for event in events:
            await ws.send(json.dumps(event))
        await asyncio.wait_for(await ws.ping(), timeout=10)


async def _unauthenticated_attempt(url: str, *, headers=None, subprotocols=None, frames=()) -> tuple:
    """What became of a connection attempt: ("rejected", status), ("closed", code),
    ("message", text) or ("open", None) when the server neither answered nor closed."""
    try:
        async with connect(
            url, additional_headers=headers or {}, subprotocols=subprotocols, open_timeout=10
        ) as ws:
            try:
                for frame in frames:
                    await ws.send(frame)
                return ("message", await asyncio.wait_for(ws.recv(), timeout=3))
            except ConnectionClosed as exc:
                return ("closed", exc.rcvd.code if exc.rcvd else None)
            except TimeoutError:
                return ("open", None)
    except InvalidStatus as exc:
        return ("rejected", exc.response.status_code)


def _refused(outcome: tuple) -> bool:
    kind, detail = outcome
    if kind == "rejected":
        return detail in (401, 403)
    if kind == "closed":
        return True
    if kind == "message":
        try:
            return json.loads(detail).get("type") != "auth_success"
        except (ValueError, AttributeError):
            return False
    return False


def test_unauthenticated_events_socket_is_refused(asgi_server, live_tenant):
    workspace = live_tenant.workspace
    flow = Flow.objects.create(workspace=workspace, name="replayed")
    flow_run = FlowRun.objects.create(workspace=workspace, flow=flow, name="replayed-run")
    url = f"{live_tenant.ws_url}/events/in"

    # Control: the route exists and takes the client's authenticated handshake.
    control = _heartbeat_event(flow_run.id, flow.id)
    run_async(_send_events_cloud_style(url, live_tenant.developer_key, [control]))
    stored = wait_for(
        lambda: Event.objects.for_workspace(workspace.id).filter(id=control["id"]).count(), lambda n: n == 1
    )
    assert stored == 1, asgi_server.trail(prefix=live_tenant.prefix)

    intruders = [_heartbeat_event(flow_run.id, flow.id) for _ in range(4)]
    attempts = {
        "no credentials, Cloud handshake": dict(frames=[json.dumps(intruders[0])]),
        "subprotocol prefect, null token": dict(
            subprotocols=["prefect"],
            frames=[json.dumps({"type": "auth", "token": None}), json.dumps(intruders[1])],
        ),
        "unknown key": dict(
            headers={"Authorization": "bearer pnb_" + "x" * 48}, frames=[json.dumps(intruders[2])]
        ),
        "unknown key as token": dict(
            subprotocols=["prefect"],
            frames=[json.dumps({"type": "auth", "token": "pnb_" + "y" * 48}), json.dumps(intruders[3])],
        ),
    }
    outcomes = {name: run_async(_unauthenticated_attempt(url, **kw)) for name, kw in attempts.items()}
    asgi_server.quiesce()
    trail = asgi_server.trail(prefix=live_tenant.prefix)
    for name, outcome in outcomes.items():
        assert _refused(outcome), f"{name}: {outcome}\n{trail}"
    assert not Event.objects.unscoped().filter(id__in=[e["id"] for e in intruders]).exists(), trail
    assert Event.objects.for_workspace(workspace.id).count() == 1


def test_replayed_events_are_stored_once(asgi_server, live_tenant):
    workspace = live_tenant.workspace
    flow = Flow.objects.create(workspace=workspace, name="replayed")
    flow_run = FlowRun.objects.create(workspace=workspace, flow=flow, name="replayed-run")
    task_run_id = uuid.uuid4()
    events = _task_run_events(flow_run.id, flow.id, task_run_id)
    ids = [e["id"] for e in events]
    url = f"{live_tenant.ws_url}/events/in"

    def counts():
        return (
            Event.objects.for_workspace(workspace.id).filter(id__in=ids).count(),
            TaskRun.objects.for_workspace(workspace.id).count(),
            TaskRunState.objects.for_workspace(workspace.id).count(),
        )

    run_async(_send_events_cloud_style(url, live_tenant.developer_key, events))
    first = wait_for(counts, lambda c: c == (3, 1, 3))
    assert first == (3, 1, 3), asgi_server.trail(prefix=live_tenant.prefix)

    # The client re-sends unconfirmed events on reconnect: the same ids again, then a new one.
    sentinel = _heartbeat_event(flow_run.id, flow.id)
    run_async(_send_events_cloud_style(url, live_tenant.developer_key, [*events, sentinel]))
    wait_for(lambda: Event.objects.for_workspace(workspace.id).filter(id=sentinel["id"]).exists(), bool)
    trail = asgi_server.trail(prefix=live_tenant.prefix)
    assert Event.objects.for_workspace(workspace.id).filter(id=sentinel["id"]).exists(), trail
    assert Event.objects.for_workspace(workspace.id).count() == 4, trail
    assert counts() == (3, 1, 3), trail
    task_run = TaskRun.objects.for_workspace(workspace.id).get(id=task_run_id)
    assert task_run.state_type == "COMPLETED" and str(task_run.flow_run_id) == str(flow_run.id)
    assert _task_state_names(workspace, task_run_id) == ["Pending", "Running", "Completed"]
    assert {
        str(i) for i in TaskRunState.objects.for_workspace(workspace.id).values_list("id", flat=True)
    } == set(ids)


# --------------------------------------------------------------------------------------------------
# The embedded default under concurrent load: no 5xx
# --------------------------------------------------------------------------------------------------


def test_concurrent_flows_never_get_a_server_error(asgi_server, live_tenant, run_prefect):
    """Four 40-task flows at once: every write (flow runs, states, logs, events) is served, on SQLite
    too, where Prefect's own server answers 503 to part of such a load."""
    from concurrent.futures import ThreadPoolExecutor

    mark = asgi_server.mark()
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: run_prefect("seq40.py"), range(4)))
    for run in runs:
        assert _ok(run)["type"] == "COMPLETED", run.describe()
    asgi_server.quiesce()
    server_errors = [
        ex.line("") for ex in asgi_server.since(mark) if ex.status is not None and ex.status >= 500
    ]
    assert server_errors == []
    workspace = live_tenant.workspace
    assert FlowRun.objects.for_workspace(workspace.id).filter(state_type="COMPLETED").count() == 4
    for run in FlowRun.objects.for_workspace(workspace.id):
        assert len(_wait_task_runs(workspace, run.id, 40, 3)) == 40
