"""Background tasks with the real client: ``task.delay()`` creates a deferred task run over HTTP,
a task worker (``prefect.task_worker.serve``, in its own process) receives it on the websocket
``task_runs/subscriptions/scheduled``, runs it, and ``future.result()`` returns; a run sent to a
worker that vanished before acknowledging it is sent again; the task-run ``set_state`` round trip."""

from __future__ import annotations

import contextlib
import json
import subprocess

import httpx
import pytest
from websockets.asyncio.client import connect

from orchestration.models import TaskRun, TaskRunState, TaskWorker
from tests.live.conftest import _argv, _client_env, run_async, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _ok(run) -> dict:
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()
    return result


@pytest.fixture
def start_script(live_tenant, tmp_path):
    """``start_script(script, home, env)``: a flow script of ``tests/live/flows`` in a background
    process with the client's environment; stopped (by its own pid) at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(script: str, home, env: dict | None = None, key: str | None = None) -> subprocess.Popen:
        client_env = _client_env(
            home=home,
            api_url=live_tenant.api_url,
            cloud_api_url=live_tenant.cloud_api_url,
            key=key or live_tenant.developer_key,
            extra=env,
        )
        workdir = tmp_path / f"bg-cwd-{len(started)}"
        workdir.mkdir(exist_ok=True)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            _argv(script),
            env=client_env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _output(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        out, _ = process.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        return "(no output)"
    return (out or "")[-5000:]


def _workers(workspace) -> list[TaskWorker]:
    return list(TaskWorker.objects.for_workspace(workspace.id))


def test_delay_is_served_by_a_task_worker(asgi_server, live_tenant, run_prefect, start_script, tmp_path):
    workspace = live_tenant.workspace
    home = tmp_path / "shared-home"
    home.mkdir()
    worker = start_script("background_worker.py", home, env={"BACKGROUND_TIMEOUT": "90"})
    connected = wait_for(lambda: _workers(workspace), lambda ws: len(ws) == 1, timeout=30)
    assert len(connected) == 1, _output(worker) + asgi_server.trail(prefix=live_tenant.prefix)

    # task_workers/filter lists it, by its task key too.
    headers = {"Authorization": f"Bearer {live_tenant.developer_key}"}
    listed = httpx.post(f"{live_tenant.api_url}/task_workers/filter", headers=headers, json={}).json()
    assert [w["identifier"] for w in listed] == [connected[0].identifier]
    [task_key] = listed[0]["task_keys"]
    by_key = {"task_worker_filter": {"task_keys": [task_key]}}
    assert (
        len(httpx.post(f"{live_tenant.api_url}/task_workers/filter", headers=headers, json=by_key).json())
        == 1
    )

    run = run_prefect("background_delay.py", env={"BACKGROUND_COUNT": "3"}, home=home)
    result = _ok(run)
    assert result["results"] == [10, 11, 12], run.describe()
    assert result["task_key"] == task_key

    # Each run was created over HTTP (201), delivered to the worker once and acknowledged, and
    # its states after Scheduled came from the worker's events: one row per run.
    for task_run_id in result["task_run_ids"]:
        task_run = wait_for(
            lambda task_run_id=task_run_id: TaskRun.objects.for_workspace(workspace.id).get(id=task_run_id),
            lambda tr: tr.state_type == "COMPLETED",
        )
        assert task_run.state_type == "COMPLETED" and task_run.flow_run_id is None
        assert task_run.delivery_queued_at is None and task_run.delivery_client_id == connected[0].identifier
        names = list(
            TaskRunState.objects.for_workspace(workspace.id)
            .filter(task_run=task_run)
            .order_by("timestamp")
            .values_list("name", flat=True)
        )
        assert names == ["Scheduled", "Pending", "Running", "Completed"], names
    assert TaskRun.objects.for_workspace(workspace.id).count() == 3
    creates = [ex for ex in asgi_server.exchanges if ex.method == "POST" and ex.path.endswith("/task_runs/")]
    assert len(creates) == 3 and all(ex.status == 201 for ex in creates), run.trail

    # The worker goes away: it is no longer listed.
    worker.terminate()
    worker.wait(timeout=20)
    gone = wait_for(lambda: _workers(workspace), lambda ws: not ws, timeout=20)
    assert gone == [], asgi_server.trail(prefix=live_tenant.prefix)


async def _take_without_ack(url: str, key: str, task_key: str) -> dict:
    async with connect(url, subprotocols=["prefect"]) as socket:
        await socket.send(json.dumps({"type": "auth", "token": key}))
        assert json.loads(await socket.recv()) == {"type": "auth_success"}
        await socket.send(json.dumps({"type": "subscribe", "keys": [task_key], "client_id": "vanishing"}))
        return json.loads(await socket.recv())  # and leave without acknowledging


async def _refused(url: str, key: str) -> tuple[int | None, str | None]:
    async with connect(url, subprotocols=["prefect"]) as socket:
        await socket.send(json.dumps({"type": "auth", "token": key}))
        with contextlib.suppress(Exception):  # the close is the answer
            await socket.recv()
        await socket.wait_closed()
        return socket.close_code, socket.close_reason


def test_a_run_whose_worker_vanished_is_delivered_again(
    asgi_server, live_tenant, run_prefect, start_script, tmp_path
):
    workspace = live_tenant.workspace
    home = tmp_path / "shared-home"
    home.mkdir()
    delayer = start_script(
        "background_delay.py", home, env={"BACKGROUND_COUNT": "1", "BACKGROUND_WAIT": "90"}
    )
    queued = wait_for(
        lambda: list(TaskRun.objects.for_workspace(workspace.id).filter(delivery_queued_at__isnull=False)),
        lambda runs: len(runs) == 1,
        timeout=30,
    )
    assert len(queued) == 1, _output(delayer)
    task_run = queued[0]

    url = f"{live_tenant.ws_url}/task_runs/subscriptions/scheduled"
    delivered = run_async(_take_without_ack(url, live_tenant.developer_key, task_run.task_key))
    assert delivered["id"] == str(task_run.id) and delivered["state"]["type"] == "SCHEDULED"
    assert delivered["state"]["state_details"]["deferred"] is True
    released = wait_for(
        lambda: TaskRun.objects.for_workspace(workspace.id).get(id=task_run.id),
        lambda tr: tr.delivery_client_id is None,
    )
    assert released.delivery_client_id is None and released.delivery_queued_at is not None

    # A real worker now gets it, and the waiting caller gets its result.
    start_script("background_worker.py", home, env={"BACKGROUND_TIMEOUT": "60"})
    try:
        out, _ = delayer.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(_output(delayer) + asgi_server.trail(prefix=live_tenant.prefix))
    assert delayer.returncode == 0, out
    result = json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert result["results"] == [10], out
    final = wait_for(
        lambda: TaskRun.objects.for_workspace(workspace.id).get(id=task_run.id),
        lambda tr: tr.state_type == "COMPLETED",
    )
    assert final.state_type == "COMPLETED" and final.delivery_client_id != "vanishing"


def test_viewer_key_cannot_subscribe_or_delay(asgi_server, live_tenant, run_prefect):
    url = f"{live_tenant.ws_url}/task_runs/subscriptions/scheduled"
    code, _reason = run_async(_refused(url, live_tenant.viewer_key))
    assert code == 1008
    run = run_prefect("background_delay.py", key=live_tenant.viewer_key, env={"BACKGROUND_WAIT": "5"})
    result = run.result
    assert run.returncode != 0 and result is not None and "403" in result["error"], run.describe()
    assert TaskRun.objects.for_workspace(live_tenant.workspace.id).count() == 0


def test_task_run_set_state_round_trip(live_tenant, run_prefect):
    run = run_prefect("background_task_state.py")
    result = _ok(run)
    assert result["same_run"] is True
    assert result["statuses"] == ["ACCEPT", "ACCEPT", "ACCEPT"], run.describe()
    assert result["state_names"] == ["Pending", "Running", "Completed", "Completed"]
    assert result["final"] == "COMPLETED" and result["run_count"] == 1
    task_run = TaskRun.objects.for_workspace(live_tenant.workspace.id).get(id=result["task_run_id"])
    assert task_run.state_type == "COMPLETED" and task_run.end_time is not None
