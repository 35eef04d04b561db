from __future__ import annotations

import pytest

from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def test_me_workspaces_lists_exactly_what_the_key_can_reach(two_workspaces, api_client):
    a, b = two_workspaces
    for key, principal in ((a.member_key, a.member), (a.service_key, a.service_account)):
        response = bearer(api_client, key).get("/api/me/workspaces")
        assert response.status_code == 200
        assert response.json() == [
            {
                "account_id": str(a.account.id),
                "account_name": a.account.name,
                "account_handle": a.account.handle,
                "workspace_id": str(a.workspace.id),
                "workspace_name": a.workspace.name,
                "workspace_description": "",
                "workspace_handle": a.workspace.handle,
                "roles": ["developer"],
            }
        ]
        assert bearer(api_client, key).get("/api/me/").json()["id"] == str(principal.id)


def test_me_requires_credentials(api_client, db):
    assert api_client.get("/api/me/workspaces").status_code == 401
