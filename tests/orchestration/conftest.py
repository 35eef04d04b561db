from __future__ import annotations

import pytest

from accounts.api_keys.services import api_key_create
from accounts.services import workspace_access_grant
from audit.actors import SYSTEM
from tests.conftest import bearer
from tests.factories import ServiceAccountFactory


@pytest.fixture
def role_client(tenant, api_client):
    """``role_client("viewer")``: an API client holding a key of a service account with that
    workspace role (and nothing else)."""

    def make(role: str):
        robot = ServiceAccountFactory(account=tenant.account)
        workspace_access_grant(workspace=tenant.workspace, principal=robot, role=role, actor=SYSTEM)
        _, key = api_key_create(owner=robot, name=role, actor=SYSTEM)
        return bearer(api_client, key)

    return make


@pytest.fixture
def dev(tenant, api_client):
    """A client with the tenant's Developer service-account key."""
    return bearer(api_client, tenant.service_key)
