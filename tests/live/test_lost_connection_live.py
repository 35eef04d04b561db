"""PostgreSQL backends terminated under load: 503s (which the client retries), never 500s, and the
server's pooled connections recover at once."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from django.db import connection


@pytest.mark.django_db(transaction=True)
def test_terminated_backends_under_load_are_503s_never_500s_and_the_server_recovers(asgi_server, live_tenant):
    if connection.vendor != "postgresql":
        pytest.skip("terminating backends is PostgreSQL's")
    headers = {"Authorization": f"Bearer {live_tenant.developer_key}"}
    api = live_tenant.api_url
    with httpx.Client(timeout=10, headers=headers) as setup:
        flow_id = setup.post(f"{api}/flows/", json={"name": f"load-{uuid.uuid4().hex[:6]}"}).json()["id"]
    statuses: list[int] = []
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=10, headers=headers) as client:
            while not stop.is_set():
                created = client.post(f"{api}/flow_runs/", json={"flow_id": flow_id})
                statuses.append(created.status_code)
                if created.status_code == 201:
                    state = {"state": {"type": "RUNNING", "name": "Running"}}
                    answer = client.post(f"{api}/flow_runs/{created.json()['id']}/set_state", json=state)
                    statuses.append(answer.status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            time.sleep(0.7)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        time.sleep(0.7)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert statuses and 500 not in statuses, sorted(set(statuses))
    assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
    # Pooled connections that died are replaced: the next requests answer as usual.
    with httpx.Client(timeout=10, headers=headers) as client:
        for _ in range(5):
            assert client.post(f"{api}/flow_runs/", json={"flow_id": flow_id}).status_code == 201
