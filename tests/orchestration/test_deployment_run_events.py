"""A run a deployment creates names its work queue and work pool from its first state on: the
``prefect.flow-run.Scheduled`` event lists them among its related resources, as Prefect's server
emits them."""

from __future__ import annotations

import pytest

from orchestration.models import Event
from tests.orchestration.test_deployments_api import _deploy

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow_id(tenant, dev):
    return dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]


class TestScheduledEvent:
    def test_the_first_state_event_names_the_queue_and_the_pool(self, tenant, dev, flow_id):
        pool = dev.post(
            f"{tenant.prefix}/work_pools/", {"name": "proc-pool", "type": "process"}, format="json"
        )
        assert pool.status_code == 201
        deployment = _deploy(dev, tenant, flow_id, work_pool_name="proc-pool", work_queue_name="fast").json()
        run = dev.post(f"{tenant.prefix}/deployments/{deployment['id']}/create_flow_run", {}, format="json")
        assert run.status_code == 201
        run = run.json()

        (event,) = [
            event
            for event in Event.objects.for_workspace(tenant.workspace.id).filter(
                event="prefect.flow-run.Scheduled"
            )
            if event.resource["prefect.resource.id"] == f"prefect.flow-run.{run['id']}"
        ]
        related = {resource["prefect.resource.role"]: resource for resource in event.related}
        assert related["work-queue"] == {
            "prefect.resource.id": f"prefect.work-queue.{run['work_queue_id']}",
            "prefect.resource.name": "fast",
            "prefect.resource.role": "work-queue",
        }
        assert related["work-pool"] == {
            "prefect.resource.id": f"prefect.work-pool.{pool.json()['id']}",
            "prefect.resource.name": "proc-pool",
            "prefect.resource.role": "work-pool",
            "prefect.work-pool.type": "process",
        }
        assert run["work_pool_id"] == pool.json()["id"] and run["work_queue_name"] == "fast"
