"""Every account and access route answers malformed bodies with a 4xx in ``{"detail": …}`` (a
filter or a partial update may ignore nulls and keys it does not know), never a 500, and changes
nothing."""

from __future__ import annotations

import pytest
from django.apps import apps

from tests.accounts.test_account_api import client, make_org
from tests.routes import account_routes, workspace_routes

pytestmark = pytest.mark.django_db

BODIES = [
    {"name": 123, "description": ["x"], "scopes": "see_flows", "email": 5},
    {"name": None, "account_role_id": "not-a-uuid", "workspace_role_id": 7},
    {"entries": [{"ip_network": 12}], "members": {"member_id": 1}},
    {"api_key_expiration": "yesterday", "old_key_expires_in_seconds": "soon", "expiration": 3},
    {"default_workspace_role_id": "x", "handle": "Not A Handle!", "max_api_key_lifetime_seconds": True},
    [1, 2, 3],
    "just a string",
]

ACCESS_ROUTES = [
    route for route in workspace_routes() if route.view_class.__module__.startswith("accounts.api.")
]
CASES = [
    (route, method)
    for route in [*account_routes(), *ACCESS_ROUTES]
    for method in route.methods()
    if method in ("POST", "PUT", "PATCH")
]


def _counts() -> dict[str, int]:
    return {
        model._meta.label: model._base_manager.count()
        for model in apps.get_app_config("accounts").get_models()
    }


@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
def test_malformed_bodies_are_4xx_and_write_nothing(route, method):
    org = make_org()
    c = client(org.owner_key)
    path = route.build(account_ref=str(org.account.id), workspace_ref=str(org.workspace.id))
    before = _counts()
    for body in BODIES:
        response = getattr(c, method.lower())(path, body, format="json")
        assert response.status_code < 500, (body, response.status_code, response.content[:300])
        if response.status_code >= 400:
            assert "detail" in response.json(), response.content[:300]
        else:  # a filter, or a partial update, ignoring nulls and keys it does not know
            assert route.template.endswith("filter") or method == "PATCH", (body, response.status_code)
    after = _counts()
    # Keys are stamped with their last use; nothing else may change.
    assert {k: v for k, v in after.items() if before[k] != v} == {}
