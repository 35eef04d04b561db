"""PostgreSQL backends terminated under load, on every write route a flow run's client uses
(flow runs, their states, task runs and theirs, logs, concurrency leases): retryable 503s with
``Retry-After``, never a 500, nothing half-written, and the server recovers at once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from django.db import connection

from orchestration.models import FlowRun

RUNNING = {"state": {"type": "RUNNING", "name": "Running"}}
LOG = {"name": "l", "level": 20, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}


def _terminate_other_backends() -> int:
    """End every backend of the test database but this thread's own; how many were ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for (ended,) in cursor.fetchall() if ended)


@pytest.mark.django_db(transaction=True)
def test_terminated_backends_under_load_are_503s_never_500s_and_the_server_recovers(asgi_server, live_tenant):
    if connection.vendor != "postgresql":
        pytest.skip("terminating backends is PostgreSQL's")
    headers = {"Authorization": f"Bearer {live_tenant.developer_key}"}
    api = live_tenant.api_url
    limit = f"lim-{uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=10, headers=headers) as setup:
        flow_id = setup.post(f"{api}/flows/", json={"name": f"load-{uuid.uuid4().hex[:6]}"}).json()["id"]
        assert (
            setup.post(f"{api}/v2/concurrency_limits/", json={"name": limit, "limit": 1000}).status_code
            == 201
        )
    seen: Counter = Counter()
    wrong: list[str] = []
    created: list[str] = []  # flow runs answered 201
    running: list[str] = []  # flow runs whose RUNNING was accepted
    stop = threading.Event()

    def call(client, route, path, body):
        response = client.post(f"{api}/{path}", json=body)
        seen[(route, response.status_code)] += 1
        if response.status_code not in (200, 201, 204, 503) or (
            response.status_code == 503 and response.headers.get("Retry-After") != "1"
        ):
            wrong.append(f"{route} {response.status_code} {dict(response.headers)} {response.text[:300]}")
        return response

    def load():
        with httpx.Client(timeout=10, headers=headers) as client:
            while not stop.is_set():
                run = call(client, "flow_runs/", "flow_runs/", {"flow_id": flow_id})
                if run.status_code == 201:
                    run_id = run.json()["id"]
                    created.append(run_id)
                    state = call(client, "flow_runs/set_state", f"flow_runs/{run_id}/set_state", RUNNING)
                    if state.status_code == 201:
                        running.append(run_id)
                    task = {"flow_run_id": run_id, "task_key": "t", "dynamic_key": "0", "name": "t"}
                    task_run = call(client, "task_runs/", "task_runs/", task)
                    if task_run.status_code in (200, 201):
                        task_id = task_run.json()["id"]
                        call(client, "task_runs/set_state", f"task_runs/{task_id}/set_state", RUNNING)
                call(client, "logs/", "logs/", [LOG])
                lease = {"names": [limit], "slots": 1, "mode": "concurrency", "lease_duration": 60}
                taken = call(
                    client, "increment-with-lease", "v2/concurrency_limits/increment-with-lease", lease
                )
                if taken.status_code == 200 and taken.json().get("lease_id"):
                    lease_id = taken.json()["lease_id"]
                    renew = f"v2/concurrency_limits/leases/{lease_id}/renew"
                    call(client, "leases/renew", renew, {"lease_duration": 60})
                    call(
                        client,
                        "decrement-with-lease",
                        "v2/concurrency_limits/decrement-with-lease",
                        {"lease_id": lease_id},
                    )

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(12):  # every backend of the database but this one, again and again
            time.sleep(0.4)
            _terminate_other_backends()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not wrong, "\n".join(wrong[:20])
    assert any(status == 503 for _, status in seen), (
        f"no connection was lost under load: {sorted(seen.items())}"
    )
    # Nothing half-written: exactly the flow runs answered 201 exist (a 503 stored none), and each
    # whose RUNNING was accepted is running.
    runs = FlowRun.objects.for_workspace(live_tenant.workspace.id)
    assert sorted(str(pk) for pk in runs.values_list("id", flat=True)) == sorted(created)
    assert set(runs.filter(id__in=running).values_list("state_type", flat=True)) <= {"RUNNING"}
    # Connections that died are replaced: the next requests answer as usual.
    with httpx.Client(timeout=10, headers=headers) as client:
        for _ in range(5):
            assert client.post(f"{api}/flow_runs/", json={"flow_id": flow_id}).status_code == 201
        log = client.post(f"{api}/logs/", json=[LOG])
        assert log.status_code == 201
