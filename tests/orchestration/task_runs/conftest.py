from __future__ import annotations

import pytest

from tests.conftest import bearer


@pytest.fixture
def dev_b(two_workspaces, api_client):
    """A Developer client of the second of ``two_workspaces``."""
    from rest_framework.test import APIClient

    return bearer(APIClient(), two_workspaces[1].service_key)


@pytest.fixture
def role_key(tenant):
    """``role_key("viewer")``: a client of its own holding a key of a service account with that
    workspace role (``role_client`` shares one client between the roles)."""
    from rest_framework.test import APIClient

    from accounts.api_keys.services import api_key_create
    from accounts.services import workspace_access_grant
    from audit.actors import SYSTEM
    from tests.factories import ServiceAccountFactory

    def make(role: str):
        robot = ServiceAccountFactory(account=tenant.account)
        workspace_access_grant(workspace=tenant.workspace, principal=robot, role=role, actor=SYSTEM)
        _, key = api_key_create(owner=robot, name=role, actor=SYSTEM)
        return bearer(APIClient(), key)

    return make


@pytest.fixture
def make_flow_run(tenant, dev):
    """``make_flow_run(state_type="RUNNING")``: a flow run of the tenant, over the API."""

    def make(state_type: str = "RUNNING", **fields) -> dict:
        flow = dev.post(f"{tenant.prefix}/flows/", {"name": "f"}, format="json").json()
        body = {"flow_id": flow["id"], "state": {"type": state_type}, **fields}
        answer = dev.post(f"{tenant.prefix}/flow_runs/", body, format="json")
        assert answer.status_code == 201, answer.content
        return answer.json()

    return make
