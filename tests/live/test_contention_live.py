"""Contention: every write route the client uses, from many clients at once, never answers 500 and
loses no confirmed event.

16 flow clients create flow runs and move them through Pending, Running and Completed, shipping logs;
8 global-concurrency users take and give back slots (with and without leases, renewing them); 4
event sockets send task-run events and checkpoint with pings as ``PrefectEventsClient`` does. Every
answer is counted. On PostgreSQL no 5xx at all; on SQLite (the embedded default, or named by a
``sqlite:///`` ``DATABASE_URL``: run this module with both) a write that truly cannot get the lock may
answer 503 with ``Retry-After``, which the client retries, and nothing else. Every event a pong
confirmed is stored once, and every task run those events describe is recorded.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.db import connection
from websockets.asyncio.client import connect

from orchestration.models import Event, FlowRun, Log, TaskRun
from tests.live.conftest import run_async, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

FLOW_CLIENTS = 16
LIMIT_USERS = 8
EVENT_SOCKETS = 4
LOAD_SECONDS = 6.0
CHECKPOINT_EVERY = 30
RETRYABLE = {503}  # what Prefect's client retries on (with 408, 429, 502), honouring Retry-After

_CAPTURED = json.loads(
    (Path(__file__).resolve().parents[1] / "orchestration/events/captured_events.json").read_text()
)


def _task_run_template() -> list[dict]:
    """The Pending, Running and Completed events the real client sent for one task run."""
    events = [e for e in _CAPTURED["seq"] if e["event"].startswith("prefect.task-run.")]
    first = events[0]["resource"]["prefect.resource.id"]
    return [e for e in events if e["resource"]["prefect.resource.id"] == first]


TASK_RUN_TEMPLATE = _task_run_template()


def task_run_events(flow_run_id: str) -> tuple[str, list[dict]]:
    """A new task run of ``flow_run_id``: its id and its events, as the client sends them."""
    template = json.dumps(TASK_RUN_TEMPLATE).replace(
        TASK_RUN_TEMPLATE[0]["payload"]["task_run"]["dynamic_key"], str(uuid.uuid4())
    )
    old_task_run = TASK_RUN_TEMPLATE[0]["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
    old_flow_run = next(
        r["prefect.resource.id"].removeprefix("prefect.flow-run.")
        for r in TASK_RUN_TEMPLATE[0]["related"]
        if r["prefect.resource.role"] == "flow-run"
    )
    task_run_id = str(uuid.uuid4())
    text = template.replace(old_task_run, task_run_id).replace(old_flow_run, flow_run_id)
    for event in TASK_RUN_TEMPLATE:
        text = text.replace(event["id"], str(uuid.uuid4()))
    return task_run_id, json.loads(text)


class Tally:
    """Every answer the server gave, by route and status."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.bodies: dict[tuple[str, int], str] = {}

    def call(self, client: httpx.Client, route: str, path: str, body, ok: set[int]) -> httpx.Response:
        """POST like Prefect's client: retry what it retries (after ``Retry-After``)."""
        for _ in range(20):
            response = client.post(path, json=body)
            key = (route, response.status_code)
            with self.lock:
                self.counts[key] += 1
                self.bodies.setdefault(key, response.text[:300])
            if response.status_code not in RETRYABLE:
                assert response.status_code in ok, (route, response.status_code, response.text[:300])
                return response
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0) / 4)
        raise AssertionError(f"{route}: still 503 after 20 tries")

    def statuses(self) -> set[int]:
        return {status for _, status in self.counts}

    def report(self) -> str:
        lines = [f"{route} {status}: {n}" for (route, status), n in sorted(self.counts.items())]
        lines += [
            f"{route} {status}: {body}" for (route, status), body in self.bodies.items() if status >= 500
        ]
        return "\n".join(lines)


def _flow_client(api: str, headers: dict, flow_id: str, stop: threading.Event, tally: Tally, runs: list):
    with httpx.Client(base_url=api, headers=headers, timeout=60) as client:
        while not stop.is_set():
            pending = {"type": "PENDING", "name": "Pending"}
            created = tally.call(
                client, "flow_runs", "/flow_runs/", {"flow_id": flow_id, "state": pending}, {201}
            ).json()
            run_id = created["id"]
            for state in ({"type": "RUNNING", "name": "Running"}, {"type": "COMPLETED", "name": "Completed"}):
                answer = tally.call(
                    client, "set_state", f"/flow_runs/{run_id}/set_state", {"state": state}, {200, 201}
                )
                assert answer.json()["status"] == "ACCEPT", answer.text
                logs = [
                    {
                        "name": "prefect.flow_runs",
                        "level": 20,
                        "message": f"{state['name']} {n}",
                        "timestamp": "2026-12-01T00:00:00Z",
                        "flow_run_id": run_id,
                    }
                    for n in range(3)
                ]
                tally.call(client, "logs", "/logs/", logs, {201})
            runs.append(run_id)


def _limit_user(api: str, headers: dict, name: str, stop: threading.Event, tally: Tally, rounds: list):
    with httpx.Client(base_url=api, headers=headers, timeout=60) as client:
        while not stop.is_set():
            body = {"names": [name], "slots": 1, "mode": "concurrency"}
            taken = tally.call(
                client,
                "increment-with-lease",
                "/v2/concurrency_limits/increment-with-lease",
                {**body, "lease_duration": 60},
                {200, 423},
            )
            if taken.status_code == 423:
                time.sleep(0.02)
                continue
            lease_id = taken.json()["lease_id"]
            tally.call(
                client,
                "lease-renew",
                f"/v2/concurrency_limits/leases/{lease_id}/renew",
                {"lease_duration": 60},
                {204},
            )
            tally.call(
                client,
                "decrement-with-lease",
                "/v2/concurrency_limits/decrement-with-lease",
                {"lease_id": lease_id},
                {204},
            )
            plain = tally.call(client, "increment", "/v2/concurrency_limits/increment", body, {200, 423})
            if plain.status_code == 200:
                tally.call(
                    client,
                    "decrement",
                    "/v2/concurrency_limits/decrement",
                    {**body, "occupancy_seconds": 0.01},
                    {200},
                )
            rounds.append(1)


async def _event_socket(url: str, key: str, flow_runs: list[str], stop: threading.Event, out: dict) -> None:
    """``PrefectEventsClient``: send, ping every ``CHECKPOINT_EVERY`` events; a pong confirms (and the
    client forgets) everything sent before it."""
    async with connect(
        url, additional_headers={"Authorization": f"bearer {key}"}, open_timeout=10, ping_interval=None
    ) as ws:
        unconfirmed: list[str] = []
        n = 0
        while not stop.is_set():
            task_run_id, events = task_run_events(flow_runs[n % len(flow_runs)])
            n += 1
            out["task_runs"].append(task_run_id)
            for event in events:
                await ws.send(json.dumps(event))
                unconfirmed.append(event["id"])
            if len(unconfirmed) >= CHECKPOINT_EVERY:
                await asyncio.wait_for(await ws.ping(), 60)
                out["confirmed"].extend(unconfirmed)
                unconfirmed = []
            await asyncio.sleep(0.01)
        await asyncio.wait_for(await ws.ping(), 60)
        out["confirmed"].extend(unconfirmed)


def test_many_clients_at_once_never_get_a_500_and_no_confirmed_event_is_lost(asgi_server, live_tenant):
    api = live_tenant.api_url
    headers = {"Authorization": f"Bearer {live_tenant.developer_key}"}
    limit_name = f"contention-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=api, headers=headers, timeout=30) as setup:
        flow_id = setup.post("/flows/", json={"name": "contention"}).json()["id"]
        assert setup.post("/v2/concurrency_limits/", json={"name": limit_name, "limit": 3}).status_code == 201
        # Task-run events name a flow run of this workspace.
        seed_runs = [setup.post("/flow_runs/", json={"flow_id": flow_id}).json()["id"] for _ in range(4)]

    tally = Tally()
    stop = threading.Event()
    runs: list[str] = []
    rounds: list[int] = []
    sockets = {"confirmed": [], "task_runs": []}
    failures: list[BaseException] = []

    def guarded(target, *args):
        def body():
            try:
                target(*args)
            except BaseException as error:  # a failed assertion in a client thread fails the test
                failures.append(error)
                stop.set()

        return threading.Thread(target=body)

    async def event_sockets():
        url = f"{live_tenant.ws_url}/events/in"
        await asyncio.gather(
            *(
                _event_socket(url, live_tenant.developer_key, seed_runs, stop, sockets)
                for _ in range(EVENT_SOCKETS)
            )
        )

    threads = [guarded(_flow_client, api, headers, flow_id, stop, tally, runs) for _ in range(FLOW_CLIENTS)]
    threads += [
        guarded(_limit_user, api, headers, limit_name, stop, tally, rounds) for _ in range(LIMIT_USERS)
    ]
    threads.append(guarded(run_async, event_sockets()))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started

    report = f"{connection.vendor}, {elapsed:.1f}s:\n{tally.report()}"
    assert not failures, f"{failures[0]!r}\n{report}"
    assert not any(thread.is_alive() for thread in threads), report
    # Every kind of client got work done.
    assert runs and rounds and sockets["confirmed"], report
    assert 500 not in tally.statuses(), report
    if connection.vendor == "postgresql":
        assert not any(status >= 500 for status in tally.statuses()), report
    else:
        assert {status for status in tally.statuses() if status >= 500} <= RETRYABLE, report

    workspace_id = live_tenant.workspace.id
    assert FlowRun.objects.for_workspace(workspace_id).filter(
        id__in=runs, state_type="COMPLETED"
    ).count() == len(runs)
    assert Log.objects.for_workspace(workspace_id).filter(flow_run_id__in=runs).count() == 6 * len(runs)
    # Every confirmed event stored once, and every task run they describe recorded, completed.
    confirmed = sockets["confirmed"]
    assert len(confirmed) == len(set(confirmed))
    stored = wait_for(
        lambda: Event.objects.for_workspace(workspace_id).filter(id__in=confirmed).count(),
        lambda count: count >= len(confirmed),
        timeout=30,
    )
    assert stored == len(confirmed), (stored, Event.objects.unscoped().count(), report)
    task_runs = sockets["task_runs"]
    recorded = wait_for(
        lambda: (
            TaskRun.objects.for_workspace(workspace_id)
            .filter(id__in=task_runs, state_type="COMPLETED")
            .count()
        ),
        lambda count: count >= len(task_runs),
        timeout=30,
    )
    assert recorded == len(task_runs), report
    # And the limit is whole again: every slot taken was given back.
    with httpx.Client(base_url=api, headers=headers, timeout=30) as check:
        limit = check.get(f"/v2/concurrency_limits/{limit_name}").json()
    assert limit["active_slots"] == 0, limit


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_the_real_client_many_users_at_once_never_gets_a_500_and_loses_no_event(
    asgi_server, live_tenant, run_prefect
):
    """The same load from the unmodified client (``flows/contention_clients.py``, one process, every
    user with its own client): what the server answered is read from its own record."""
    limit_name = f"contention-{uuid.uuid4().hex[:6]}"
    run = run_prefect(
        "contention_clients.py",
        env={
            "CONTENTION_SECONDS": LOAD_SECONDS,
            "LIMIT_NAME": limit_name,
            "PREFECT_CLIENT_MAX_RETRIES": "10",
        },
        timeout=100,
    )
    result = run.result
    assert run.returncode == 0 and result is not None and "error" not in result, run.describe()

    answers: collections.Counter[tuple[str, int | None]] = collections.Counter()
    closes: collections.Counter[int | None] = collections.Counter()
    for exchange in asgi_server.exchanges:
        route = _UUID.sub("{id}", exchange.path.removeprefix(live_tenant.prefix))
        if exchange.kind == "http":
            answers[(f"{exchange.method} {route}", exchange.status)] += 1
        elif route == "/events/in":
            closes[exchange.close_code] += 1
    report = f"{connection.vendor}:\n" + "\n".join(
        f"{k[0]} {k[1]}: {n}" for k, n in sorted(answers.items(), key=str)
    )
    statuses = {status for _, status in answers}
    assert 500 not in statuses and None not in statuses, report
    if connection.vendor == "postgresql":
        assert not any(status >= 500 for status in statuses), report
    else:
        assert {status for status in statuses if status >= 500} <= RETRYABLE, report
    # No events socket was closed on the client for the server's trouble.
    assert closes and set(closes) <= {1000, None}, closes
    # Every route the load drives was answered.
    for route in (
        "/flow_runs/",
        "/flow_runs/{id}/set_state",
        "/logs/",
        "/v2/concurrency_limits/increment-with-lease",
        "/v2/concurrency_limits/leases/{id}/renew",
        "/v2/concurrency_limits/decrement-with-lease",
        "/v2/concurrency_limits/increment",
        "/v2/concurrency_limits/decrement",
    ):
        assert any(key[0] == f"POST {route}" and key[1] < 300 for key in answers), (route, report)

    workspace_id = live_tenant.workspace.id
    runs = result["flow_runs"]
    assert runs and result["rounds"], report
    assert FlowRun.objects.for_workspace(workspace_id).filter(
        id__in=runs, state_type="COMPLETED"
    ).count() == len(runs)
    assert Log.objects.for_workspace(workspace_id).filter(flow_run_id__in=runs).count() == 6 * len(runs)
    # Every event the client emitted is stored once (the client closed normally, so even the last,
    # unconfirmed ones were read), and every task run they describe is recorded, completed.
    emitted, task_runs = result["events"], result["task_runs"]
    assert emitted and len(emitted) == len(set(emitted))
    stored = wait_for(
        lambda: Event.objects.for_workspace(workspace_id).filter(id__in=emitted).count(),
        lambda count: count >= len(emitted),
        timeout=30,
    )
    assert stored == len(emitted), report
    recorded = wait_for(
        lambda: (
            TaskRun.objects.for_workspace(workspace_id)
            .filter(id__in=task_runs, state_type="COMPLETED")
            .count()
        ),
        lambda count: count >= len(task_runs),
        timeout=30,
    )
    assert recorded == len(task_runs), report
    with httpx.Client(base_url=live_tenant.api_url, timeout=30) as check:
        limit = check.get(
            f"/v2/concurrency_limits/{limit_name}",
            headers={"Authorization": f"Bearer {live_tenant.developer_key}"},
        ).json()
    assert limit["active_slots"] == 0, limit
