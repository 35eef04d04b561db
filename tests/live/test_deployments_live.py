"""End to end: deployments with the unmodified ``prefect`` client, in subprocesses, against the live
server. ``flow.serve`` runs a deployment and takes a cancellation from ``/events/out``; a deployment
concurrency limit makes a second run wait; bad inputs are refused with a clear detail and leave
nothing behind.

Long-running clients (``serve``, ``prefect worker start``) run under :func:`spawn`, each in its own
session; every process the fixture started, and every descendant it still has, is killed by id at
the end of the test. ``tests/live/test_workers_live.py`` uses the same fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration.models import (
    ConcurrencyLease,
    ConcurrencyLimitV2,
    Deployment,
    DeploymentSchedule,
    Flow,
    FlowRun,
    FlowRunState,
    WorkPool,
)
from tests.live.conftest import _UNSET, FLOWS_DIR, _argv, _client_env, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

FLOW_NAME = "live-job"
DEPLOY_SCRIPT = str(FLOWS_DIR / "live_deploy.py")

# --------------------------------------------------------------------------------------------------
# long-running clients
# --------------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, start time) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[19])


def pid_alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Spawned:
    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path
    #: Processes it started that left its session (a flow-run child), as (pid, start time).
    adopted: set[tuple[int, int]] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-tail:]

    def describe(self) -> str:
        state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
        return f"--- {self.name} ({state}): $ {' '.join(self.argv)}\n{self.output()}"

    def adopt(self, pid: int) -> None:
        """Also kill ``pid`` (a process this one started) at the end, if it is still that process."""
        stat = _proc_stat(pid)
        if stat is not None:
            self.adopted.add((pid, stat[2]))

    def kill(self) -> None:
        """SIGKILL the process, its session (process group) and every descendant, by id."""
        pids = {self.pid, *descendants(self.pid)}
        for pid, started in self.adopted:
            stat = _proc_stat(pid)
            if stat is not None and stat[2] == started:  # not a recycled pid
                pids.add(pid)
                pids.update(descendants(pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


@pytest.fixture
def spawn(asgi_server, live_tenant, tmp_path) -> Iterator[Callable[..., Spawned]]:
    """``spawn(script_or_args, env=None, *, name=…, key=…, home=None)``: start the real client in
    the background (``Popen``, its own session, output to a file); all are killed at teardown."""
    started: list[Spawned] = []
    counter = iter(range(1, 1000))

    def start(
        script_or_args,
        env: dict | None = None,
        *,
        name: str | None = None,
        key: Any = _UNSET,
        home: Path | None = None,
    ) -> Spawned:
        n = next(counter)
        home = home or tmp_path / f"spawn-home-{n}"
        home.mkdir(parents=True, exist_ok=True)
        workdir = tmp_path / f"spawn-cwd-{n}"
        workdir.mkdir(exist_ok=True)
        argv = _argv(script_or_args)
        client_env = _client_env(
            home=home,
            api_url=live_tenant.api_url,
            cloud_api_url=live_tenant.cloud_api_url,
            key=live_tenant.developer_key if key is _UNSET else key,
            extra=env,
        )
        log_path = tmp_path / f"spawn-{n}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                argv,
                env=client_env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        spawned = Spawned(name=name or argv[-1], argv=argv, popen=popen, log_path=log_path)
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        spawned.kill()


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api(live_tenant) -> httpx.Client:
    return httpx.Client(base_url=live_tenant.api_url, headers=headers(live_tenant.developer_key), timeout=15)


def flow_states(workspace, flow_run_id) -> list[FlowRunState]:
    return list(
        FlowRunState.objects.for_workspace(workspace.id)
        .filter(flow_run_id=flow_run_id)
        .order_by("timestamp", "created")
    )


def state_names(workspace, flow_run_id) -> list[str]:
    return [s.name for s in flow_states(workspace, flow_run_id)]


def get_run(workspace, flow_run_id) -> FlowRun:
    return FlowRun.objects.for_workspace(workspace.id).get(id=flow_run_id)


def wait_run(workspace, flow_run_id, state_types: set[str], timeout: float = 30.0) -> FlowRun:
    return wait_for(lambda: get_run(workspace, flow_run_id), lambda r: r.state_type in state_types, timeout)


def wait_deployment(workspace, name: str, process: Spawned, timeout: float = 40.0) -> Deployment | None:
    """The deployment ``process`` registers (None if it exits first or takes too long)."""
    return wait_for(
        lambda: Deployment.objects.for_workspace(workspace.id).filter(name=name).first(),
        lambda d: d is not None or process.popen.poll() is not None,
        timeout,
    )


def run_id_from_cli(output: str) -> str | None:
    """``prefect deployment run`` prints the new run's ``UUID: <id>``."""
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    return match.group(1) if match else None


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def explain(asgi_server, live_tenant, *procs: Spawned, mark: int = 0, extra: str = "") -> str:
    parts = [extra] if extra else []
    parts += [p.describe() for p in procs]
    parts.append(asgi_server.trail(mark, live_tenant.prefix))
    return "\n".join(parts)


def create_flow_run_body(parameters: dict | None = None) -> dict:
    """What ``prefect deployment run`` posts to ``deployments/{id}/create_flow_run``."""
    return {
        "state": {
            "type": "SCHEDULED",
            "name": "Scheduled",
            "message": None,
            "state_details": {"scheduled_time": None, "traceparent": None},
            "data": None,
        },
        "name": None,
        "parameters": parameters or {},
        "context": {},
        "tags": [],
        "idempotency_key": None,
        "parent_task_run_id": None,
        "job_variables": {},
        "labels": {},
    }


def serve(spawn, name: str, *extra: str) -> Spawned:
    """``live_job.serve(name=…)`` in the background; the runner polls every second."""
    return spawn(
        [DEPLOY_SCRIPT, "serve", "--name", name, *extra],
        env={"PREFECT_RUNNER_POLL_FREQUENCY": "1"},
        name=f"serve {name}",
    )


# --------------------------------------------------------------------------------------------------
# 1. flow.serve; `prefect deployment run`; `prefect flow-run cancel`
# --------------------------------------------------------------------------------------------------


def test_serve_runs_cli_deployment_run_and_cancels_through_events_out(
    asgi_server, live_tenant, run_prefect, spawn, tmp_path
):
    workspace = live_tenant.workspace
    served = serve(spawn, "served-dep")
    deployment = wait_deployment(workspace, "served-dep", served)
    assert deployment is not None, explain(asgi_server, live_tenant, served)
    assert deployment.flow.name == FLOW_NAME
    assert deployment.work_queue_id is None and deployment.paused is False
    assert deployment.entrypoint and deployment.entrypoint.endswith("live_job.py:live_job")
    schema = deployment.parameter_openapi_schema or {}
    assert schema.get("properties", {}).get("x", {}).get("type") == "integer", schema

    # A run from the CLI: created SCHEDULED, picked up by the runner, executed to completion.
    launched = run_prefect(["prefect", "deployment", "run", f"{FLOW_NAME}/served-dep", "--param", "x=3"])
    assert launched.returncode == 0, launched.describe()
    run_id = run_id_from_cli(launched.output)
    assert run_id, launched.describe()
    run = wait_run(workspace, run_id, {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, timeout=40)
    assert run.state_type == "COMPLETED", explain(
        asgi_server, live_tenant, served, extra=f"{run.state_type} {state_names(workspace, run_id)}"
    )
    assert str(run.deployment_id) == str(deployment.id)
    assert run.parameters == {"x": 3}
    assert run.run_count == 1
    names = state_names(workspace, run_id)
    assert names[0] == "Scheduled" and names[-1] == "Completed", names
    assert "Pending" in names and "Running" in names, names
    assert names.index("Pending") < names.index("Running"), names

    # A long run, cancelled from the CLI: the runner hears of it on /events/out and kills it.
    marker = tmp_path / "cancel-marker.json"
    launched = run_prefect(
        [
            "prefect",
            "deployment",
            "run",
            f"{FLOW_NAME}/served-dep",
            "--param",
            "sleep=120",
            "--param",
            f"marker={marker}",
        ]
    )
    assert launched.returncode == 0, launched.describe()
    long_id = run_id_from_cli(launched.output)
    assert long_id, launched.describe()
    started = wait_for(lambda: read_marker(marker), lambda m: m is not None, timeout=40)
    assert started is not None, explain(asgi_server, live_tenant, served)
    assert started["flow_run_id"] == long_id
    served.adopt(started["pid"])
    run = wait_run(workspace, long_id, {"RUNNING"}, timeout=10)
    assert run.state_type == "RUNNING", state_names(workspace, long_id)

    mark = asgi_server.mark()
    cancel = run_prefect(["prefect", "flow-run", "cancel", long_id])
    assert cancel.returncode == 0, cancel.describe()
    run = wait_run(workspace, long_id, {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}, timeout=20)
    trail = explain(asgi_server, live_tenant, served, mark=mark, extra=str(state_names(workspace, long_id)))
    assert run.state_type == "CANCELLED", trail
    states = flow_states(workspace, long_id)
    cancelling = [s for s in states if s.type == "CANCELLING"]
    cancelled = [s for s in states if s.type == "CANCELLED"]
    assert len(cancelling) == 1 and len(cancelled) == 1, trail
    assert states[-1].type == "CANCELLED", trail
    took = (cancelled[0].timestamp - cancelling[0].timestamp).total_seconds()
    # The push arrives in well under a second; the runner needs ~3 s to stop the child. The polling
    # fallback would take 10 s or more.
    assert took < 8, f"CANCELLING -> CANCELLED took {took:.1f}s\n{trail}"
    assert wait_for(lambda: pid_alive(started["pid"]), lambda alive: not alive, timeout=10) is False, trail

    # The runner learnt it from /events/out: the Cancelling event was pushed to its subscription
    # (a socket opened before the cancel, so the whole trail is searched).
    pushed = [
        frame
        for ex in asgi_server.exchanges
        if ex.kind == "websocket" and ex.path.endswith("/events/out")
        for frame in ex.frames_out
        if "prefect.flow-run.Cancelling" in frame and long_id in frame
    ]
    assert pushed, trail
    event = json.loads(pushed[0])
    assert event["type"] == "event", pushed[0]
    assert event["event"]["resource"]["prefect.resource.id"] == f"prefect.flow-run.{long_id}"
    polled = [
        ex
        for ex in asgi_server.exchanges
        if ex.method == "POST"
        and ex.path.endswith("/flow_runs/filter")
        and long_id in ex.request_body.decode()
    ]
    assert not polled, f"the runner fell back to polling for cancellation\n{trail}"

    # Ctrl-C: the runner pauses its deployment on the way out (PATCH deployments/{id} paused). On a
    # busy machine its shutdown (its loops cancelled, its sockets closed) can take a while, and a
    # second Ctrl-C would abort it before the pause: one press, and patience.
    mark = asgi_server.mark()
    served.popen.send_signal(signal.SIGINT)
    paused = wait_for(
        lambda: Deployment.objects.for_workspace(workspace.id).get(id=deployment.id).paused, bool, timeout=60
    )
    assert paused is True, explain(asgi_server, live_tenant, served, mark=mark, extra=_signal_state(served))


def _signal_state(spawned: Spawned) -> str:
    """The runner's ignored, blocked and caught signal masks, as the kernel has them."""
    try:
        status = Path(f"/proc/{spawned.popen.pid}/status").read_text()
    except OSError:
        return f"exit status {spawned.popen.poll()}"
    return " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


# --------------------------------------------------------------------------------------------------
# 4. deployment concurrency_limit=1: the second run waits for the first
# --------------------------------------------------------------------------------------------------


def test_deployment_concurrency_limit_makes_second_run_wait(asgi_server, live_tenant, spawn, monkeypatch):
    from orchestration.persistence import concurrency as concurrency_services

    # Prefect's PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS (30 s), shortened so the
    # waiting run is retried within the test's time budget.
    monkeypatch.setattr(concurrency_services, "DEPLOYMENT_SLOT_WAIT_SECONDS", 4.0)
    workspace = live_tenant.workspace
    served = serve(spawn, "limited-dep", "--global-limit", "1")
    deployment = wait_deployment(workspace, "limited-dep", served)
    assert deployment is not None, explain(asgi_server, live_tenant, served)
    assert deployment.concurrency_limit == 1, explain(asgi_server, live_tenant, served)

    mark = asgi_server.mark()
    run_ids = []
    with api(live_tenant) as client:
        for _ in range(2):
            answer = client.post(
                f"/deployments/{deployment.id}/create_flow_run", json=create_flow_run_body({"sleep": 5})
            )
            assert answer.status_code == 201, (answer.status_code, answer.text)
            run_ids.append(answer.json()["id"])

    finals = [
        wait_run(workspace, rid, {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, 50) for rid in run_ids
    ]
    trail = explain(
        asgi_server,
        live_tenant,
        served,
        mark=mark,
        extra="\n".join(f"{rid}: {state_names(workspace, rid)}" for rid in run_ids),
    )
    assert [r.state_type for r in finals] == ["COMPLETED", "COMPLETED"], trail

    waited = [rid for rid in run_ids if "AwaitingConcurrencySlot" in state_names(workspace, rid)]
    assert len(waited) == 1, trail
    second = waited[0]
    first = next(rid for rid in run_ids if rid != second)
    first_states, second_states = flow_states(workspace, first), flow_states(workspace, second)
    assert [s.name for s in first_states if s.type in ("RUNNING", "COMPLETED")] == ["Running", "Completed"], (
        trail
    )
    awaiting = [s for s in second_states if s.name == "AwaitingConcurrencySlot"]
    assert all(s.type == "SCHEDULED" for s in awaiting), trail
    second_running = [s for s in second_states if s.type == "RUNNING"]
    assert len(second_running) == 1, trail
    first_done = next(s for s in first_states if s.type == "COMPLETED")
    first_pending = next(s for s in first_states if s.type == "PENDING")
    # The slot is taken on the way to PENDING: the second was refused while the first held it, and
    # ran only after the first finished.
    assert first_pending.timestamp <= awaiting[0].timestamp < first_done.timestamp, trail
    assert second_running[0].timestamp >= first_done.timestamp, trail

    # On the wire: its PENDING proposal was answered REJECT into AwaitingConcurrencySlot.
    rejections = [
        ex.response_json()
        for ex in asgi_server.since(mark)
        if ex.method == "POST"
        and ex.path.endswith(f"/flow_runs/{second}/set_state")
        and (ex.request_json() or {}).get("state", {}).get("type") == "PENDING"
        and (ex.response_json() or {}).get("status") == "REJECT"
    ]
    assert rejections, trail
    assert rejections[0]["state"]["type"] == "SCHEDULED"
    assert rejections[0]["state"]["name"] == "AwaitingConcurrencySlot"
    assert rejections[0]["details"]["type"] == "reject_details"

    # Both slots are back: the limit behind the deployment holds none and no lease is left.
    limits = list(ConcurrencyLimitV2.objects.for_workspace(workspace.id))
    assert len(limits) == 1 and limits[0].limit == 1, [(x.name, x.limit) for x in limits]
    limit = wait_for(
        lambda: ConcurrencyLimitV2.objects.for_workspace(workspace.id).get(id=limits[0].id),
        lambda x: x.active_slots == 0,
        timeout=10,
    )
    assert limit.active_slots == 0, trail
    assert ConcurrencyLease.objects.for_workspace(workspace.id).count() == 0, trail


# --------------------------------------------------------------------------------------------------
# 6. bad inputs: refused with a clear detail, nothing stored
# --------------------------------------------------------------------------------------------------


def _long_rrule() -> str:
    """A valid rule set longer than Prefect's 6,500-character limit."""
    dates = ",".join(f"2030{month:02d}{day:02d}T090000" for month in range(1, 13) for day in range(1, 29))
    text = f"DTSTART:20300101T090000\nRRULE:FREQ=DAILY;COUNT=3\nRDATE:{dates}\nRDATE:{dates}"
    assert len(text) > 6500
    return text


def _counts(workspace) -> tuple[int, int, int, int]:
    return (
        Deployment.objects.for_workspace(workspace.id).count(),
        DeploymentSchedule.objects.for_workspace(workspace.id).count(),
        FlowRun.objects.for_workspace(workspace.id).count(),
        WorkPool.objects.for_workspace(workspace.id).count(),
    )


def test_bad_inputs_are_refused_and_store_nothing(asgi_server, live_tenant, run_prefect):
    workspace = live_tenant.workspace
    applied = run_prefect([DEPLOY_SCRIPT, "apply", "--name", "strict-dep"])
    assert applied.returncode == 0 and applied.result and "deployment_id" in applied.result, (
        applied.describe()
    )
    deployment_id = applied.result["deployment_id"]
    deployment = Deployment.objects.for_workspace(workspace.id).get(id=deployment_id)
    assert deployment.enforce_parameter_schema is True
    flow_id = str(deployment.flow_id)
    before = _counts(workspace)
    assert before == (1, 0, 0, 0), before

    # Parameters that fail the deployment's schema, from the CLI.
    refused = run_prefect(
        ["prefect", "deployment", "run", f"{FLOW_NAME}/strict-dep", "--param", "x=notanint"]
    )
    assert refused.returncode != 0, refused.describe()
    create = [
        ex for ex in asgi_server.exchanges if ex.method == "POST" and ex.path.endswith("/create_flow_run")
    ]
    assert create and create[-1].status in (409, 422), refused.describe()  # Prefect answers 409
    detail = (create[-1].response_json() or {}).get("detail", "")
    assert "Error creating flow run" in detail and "'notanint' is not of type 'integer'" in detail, detail
    assert "'notanint' is not of type 'integer'" in refused.output, refused.describe()
    assert _counts(workspace) == before

    with api(live_tenant) as client:
        # The same over HTTP, as create_flow_run_from_deployment sends it.
        answer = client.post(
            f"/deployments/{deployment_id}/create_flow_run", json=create_flow_run_body({"x": "abc"})
        )
        assert answer.status_code in (409, 422), (answer.status_code, answer.text)
        assert "'abc' is not of type 'integer'" in answer.json()["detail"], answer.text
        # A run on the happy path, as a control (then removed from the counts).
        control = client.post(
            f"/deployments/{deployment_id}/create_flow_run", json=create_flow_run_body({"x": 5})
        )
        assert control.status_code == 201, control.text
        assert control.json()["parameters"] == {"x": 5}
        FlowRun.objects.for_workspace(workspace.id).filter(id=control.json()["id"]).delete()

        # An unknown work pool, on POST /deployments/ (Prefect: 404 'Work pool "…" not found.').
        body = {
            "name": "nowhere-dep",
            "flow_id": flow_id,
            "work_pool_name": "no-such-pool",
            "entrypoint": "live_job.py:live_job",
            "schedules": [],
            "parameters": {},
        }
        answer = client.post("/deployments/", json=body)
        assert answer.status_code == 404, (answer.status_code, answer.text)
        assert answer.json()["detail"] == 'Work pool "no-such-pool" not found.', answer.text

        # A malformed cron, on a new deployment and on an existing one.
        for cron in ("61 * * * *", "not a cron"):
            bad = {
                **body,
                "name": "cron-dep",
                "work_pool_name": None,
                "schedules": [{"schedule": {"cron": cron, "timezone": "UTC"}, "active": True}],
            }
            answer = client.post("/deployments/", json=bad)
            assert answer.status_code == 422, (cron, answer.status_code, answer.text)
            assert "Invalid cron string" in answer.text and cron in answer.text, answer.text
            answer = client.post(
                f"/deployments/{deployment_id}/schedules",
                json=[{"schedule": {"cron": cron, "timezone": "UTC"}, "active": True}],
            )
            assert answer.status_code == 422, (cron, answer.status_code, answer.text)
            assert "Invalid cron string" in answer.text, answer.text

        # An RRule over the 6,500-character limit.
        rrule = _long_rrule()
        answer = client.post(f"/deployments/{deployment_id}/schedules", json=[{"schedule": {"rrule": rrule}}])
        assert answer.status_code == 422, (answer.status_code, answer.text[:500])
        assert "RRule" in answer.text and "6500" in answer.text, answer.text[:1000]
        bad = {
            **body,
            "name": "rrule-dep",
            "work_pool_name": None,
            "schedules": [{"schedule": {"rrule": rrule}}],
        }
        answer = client.post("/deployments/", json=bad)
        assert answer.status_code == 422, (answer.status_code, answer.text[:500])
        assert "6500" in answer.text, answer.text[:1000]

        # The control: a valid cron on the same route is taken.
        good = client.post(
            f"/deployments/{deployment_id}/schedules",
            json=[{"schedule": {"cron": "0 9 * * *", "timezone": "UTC"}, "active": False}],
        )
        assert good.status_code == 201, (good.status_code, good.text)
        DeploymentSchedule.objects.for_workspace(workspace.id).filter(deployment_id=deployment_id).delete()

    assert _counts(workspace) == before
    assert not Deployment.objects.for_workspace(workspace.id).exclude(id=deployment_id).exists()

    # An unknown work pool from the client: deploy() looks the pool up first and stops there.
    source = Path(__file__).resolve().parent / "flows"
    deploy = run_prefect(
        [
            DEPLOY_SCRIPT,
            "deploy",
            "--name",
            "nowhere-dep",
            "--source",
            str(source),
            "--pool",
            "no-such-pool",
        ]
    )
    assert deploy.returncode == 2 and deploy.result and "error" in deploy.result, deploy.describe()
    assert "Could not find work pool 'no-such-pool'" in deploy.result["error"], deploy.describe()
    assert any(
        ex.method == "GET" and ex.path.endswith("/work_pools/no-such-pool") and ex.status == 404
        for ex in asgi_server.exchanges
    ), deploy.trail
    assert _counts(workspace) == before, deploy.trail
    assert Flow.objects.for_workspace(workspace.id).count() == 1
