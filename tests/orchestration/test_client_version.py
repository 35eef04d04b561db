"""The Prefect client's version reaches orchestration from the ``User-Agent`` of ``set_state``:
a client older than 3.4.11 cannot renew its deployment-concurrency lease, so the lease it holds
on its way to RUNNING stops expiring; a current client keeps renewing its own. A client that does
not say which version it is counts as an old one, as in Prefect's server."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orchestration.models import ConcurrencyLease, Deployment
from tenants.scoping import workspace_scope

pytestmark = pytest.mark.django_db


def _set_state(dev, tenant, run_id, state_type, **headers):
    state = {"type": state_type, "name": None, "message": None, "state_details": {}, "data": None}
    return dev.post(
        f"{tenant.prefix}/flow_runs/{run_id}/set_state",
        {"state": state, "force": False},
        format="json",
        **headers,
    )


def _pending_run_holding_a_slot(dev, tenant) -> tuple[str, uuid.UUID]:
    flow_id = dev.post(f"{tenant.prefix}/flows/", {"name": "etl"}, format="json").json()["id"]
    with workspace_scope(tenant.workspace.id):
        deployment = Deployment.objects.create(flow_id=flow_id, name="limited", concurrency_limit=1)
    body = {"flow_id": flow_id, "deployment_id": str(deployment.id), "state": {"type": "SCHEDULED"}}
    run_id = dev.post(f"{tenant.prefix}/flow_runs/", body, format="json").json()["id"]
    pending = _set_state(dev, tenant, run_id, "PENDING")
    assert pending.status_code == 201
    lease_id = pending.json()["state"]["state_details"]["deployment_concurrency_lease_id"]
    assert lease_id is not None
    return run_id, uuid.UUID(lease_id)


def _lease_lifetime(tenant, lease_id: uuid.UUID) -> dt.timedelta:
    with workspace_scope(tenant.workspace.id):
        return ConcurrencyLease.objects.get(id=lease_id).expiration - timezone.now()


class TestClientVersionFromUserAgent:
    @pytest.mark.parametrize(
        ("user_agent", "long_lived"),
        [
            ("prefect/3.4.10 (API 0.8.4)", True),
            ("prefect/3.0.0rc20 (API 0.8.4)", True),
            ("python-httpx/0.28.1", True),
            (None, True),
            ("prefect/3.4.11 (API 0.8.4)", False),
            ("prefect/3.6.2 (API 0.8.4)", False),
        ],
    )
    def test_an_old_or_unknown_client_keeps_its_slot_until_the_run_ends(
        self, tenant, dev, user_agent, long_lived
    ):
        run_id, lease_id = _pending_run_holding_a_slot(dev, tenant)
        headers = {"HTTP_USER_AGENT": user_agent} if user_agent is not None else {}
        running = _set_state(dev, tenant, run_id, "RUNNING", **headers)
        assert (running.status_code, running.json()["status"]) == (201, "ACCEPT")
        assert (_lease_lifetime(tenant, lease_id).days > 365) is long_lived
