"""A subscribed task worker hears of a queued background run at once (the queue announces it
through the hub), not on its own clock; with Redis, whichever process queued it."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async

from orchestration.api.task_runs.subscriptions import ScheduledTaskSubscriptionConsumer
from tests.orchestration.events.conftest import open_prefect, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_queued_run_reaches_a_waiting_worker_at_once(tenant, dev, monkeypatch):
    # Its own clock would not look again for a minute: only the announcement can deliver in time.
    monkeypatch.setattr(ScheduledTaskSubscriptionConsumer, "LOOK_AGAIN_EVERY", 60.0)
    body = {
        "task_key": "bg-key",
        "dynamic_key": "bg-key-0",
        "state": {"type": "SCHEDULED", "state_details": {"deferred": True}},
    }

    async def scenario():
        ws = await open_prefect(f"{tenant.prefix}/task_runs/subscriptions/scheduled", tenant.service_key)
        await ws.send_json_to({"type": "subscribe", "keys": ["bg-key"], "client_id": "worker-1"})
        assert await ws.receive_nothing(timeout=0.5)  # subscribed, and nothing queued yet
        queued_at = time.monotonic()
        created = await database_sync_to_async(dev.post)(f"{tenant.prefix}/task_runs/", body, format="json")
        delivered = await ws.receive_json_from(timeout=5)
        waited = time.monotonic() - queued_at
        await ws.send_json_to({"type": "ack"})
        await ws.disconnect()
        return created.json()["id"], delivered["id"], waited

    created_id, delivered_id, waited = run(scenario)
    assert delivered_id == created_id
    assert waited < 2.0
