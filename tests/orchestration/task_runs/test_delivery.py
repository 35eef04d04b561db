"""The background-task queue (Prefect's ``task_queue.py``, in the database): a queued run goes to
one worker, leaves the queue when acknowledged, and goes back when its worker vanished first or
never acknowledged."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from orchestration.models import TaskRun, TaskWorker
from orchestration.services.task_runs import (
    DELIVERY_ACK_TIMEOUT,
    task_run_claim_delivery,
    task_run_delivery_acknowledged,
    task_run_delivery_release,
    task_worker_forget,
    task_worker_observe,
)
from tenants.scoping import workspace_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(tenant, dev):
    def make(task_key: str = "bg-key", n: int = 1) -> list[str]:
        ids = []
        for i in range(n):
            body = {
                "task_key": task_key,
                "dynamic_key": f"{task_key}-{i}",
                "state": {"type": "SCHEDULED", "state_details": {"deferred": True}},
            }
            ids.append(dev.post(f"{tenant.prefix}/task_runs/", body, format="json").json()["id"])
        return ids

    return make


def test_each_run_goes_to_one_worker_once(tenant, queued):
    first, second = queued(n=2)
    queued(task_key="other-key")
    with workspace_scope(tenant.workspace.id):
        a = task_run_claim_delivery(task_keys=["bg-key"], client_id="a")
        b = task_run_claim_delivery(task_keys=["bg-key"], client_id="b")
        assert (str(a.id), str(b.id)) == (first, second)  # oldest first
        assert task_run_claim_delivery(task_keys=["bg-key"], client_id="c") is None
        task_run_delivery_acknowledged(task_run_id=a.id, client_id="a")
        assert TaskRun.objects.get(id=a.id).delivery_queued_at is None
        # An acknowledgement from a worker that does not hold the run changes nothing.
        task_run_delivery_acknowledged(task_run_id=b.id, client_id="a")
        assert TaskRun.objects.get(id=b.id).delivery_queued_at is not None


def test_a_vanished_worker_gives_the_run_back(tenant, queued):
    [run_id] = queued()
    with workspace_scope(tenant.workspace.id):
        taken = task_run_claim_delivery(task_keys=["bg-key"], client_id="gone")
        task_run_delivery_release(task_run_id=taken.id, client_id="gone")
        again = task_run_claim_delivery(task_keys=["bg-key"], client_id="next")
        assert str(again.id) == run_id and again.delivery_client_id == "next"


def test_an_unacknowledged_claim_expires(tenant, queued):
    [run_id] = queued()
    with workspace_scope(tenant.workspace.id):
        task_run_claim_delivery(task_keys=["bg-key"], client_id="stuck")
        TaskRun.objects.filter(id=run_id).update(
            delivery_claimed_at=timezone.now() - DELIVERY_ACK_TIMEOUT - dt.timedelta(seconds=1)
        )
        assert str(task_run_claim_delivery(task_keys=["bg-key"], client_id="fresh").id) == run_id


def test_runs_that_left_scheduled_are_not_delivered(tenant, dev, queued):
    [run_id] = queued()
    dev.post(
        f"{tenant.prefix}/task_runs/{run_id}/set_state",
        {"state": {"type": "PENDING", "state_details": {"deferred": True}}},
        format="json",
    )
    with workspace_scope(tenant.workspace.id):
        assert task_run_claim_delivery(task_keys=["bg-key"], client_id="a") is None


def test_another_workspaces_runs_are_never_delivered(two_workspaces, api_client):
    from tests.conftest import bearer

    a, b = two_workspaces
    body = {
        "task_key": "k",
        "dynamic_key": "0",
        "state": {"type": "SCHEDULED", "state_details": {"deferred": True}},
    }
    bearer(api_client, a.service_key).post(f"{a.prefix}/task_runs/", body, format="json")
    with workspace_scope(b.workspace.id):
        assert task_run_claim_delivery(task_keys=["k"], client_id="w") is None


def test_workers_are_observed_and_forgotten(tenant):
    with workspace_scope(tenant.workspace.id):
        task_worker_observe(identifier="w", task_keys=["a"])
        task_worker_observe(identifier="w", task_keys=["a", "b"])
        assert list(TaskWorker.objects.values_list("identifier", "task_keys")) == [("w", ["a", "b"])]
        task_worker_forget(identifier="w")
        assert not TaskWorker.objects.exists()
