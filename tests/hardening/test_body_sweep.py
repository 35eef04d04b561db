"""A sweep of malformed bodies over every route that takes one, under a workspace and an account,
as a principal the route lets in: never a 500, always JSON, and a refused request stores nothing."""

from __future__ import annotations

import json

import pytest
from django.apps import apps

from accounts.api_keys.services import api_key_create
from accounts.permissions import AccountRole
from accounts.services import membership_add
from audit.actors import SYSTEM
from tests.factories import UserFactory
from tests.routes import account_routes, workspace_routes

pytestmark = pytest.mark.django_db

BODY_METHODS = ("POST", "PUT", "PATCH")
CASES = [
    (route, method)
    for route in workspace_routes() + account_routes()
    for method in route.methods()
    if method in BODY_METHODS
]

ODD = "a" * 10_000
BODIES = [
    "{}",
    "[]",
    '"x"',
    "null",
    "17",
    '{"name": ["a"], "id": {"a": 1}, "tags": "x", "labels": [1], "parameters": "x"}',
    json.dumps({"name": ODD, "description": ODD, "key": ODD, "value": ODD, "slug": ODD}),
    '{"limit": -1, "offset": -5, "sort": ["x"]}',
    '{"limit": 4611686018427387904, "offset": 4611686018427387904, "sort": 5}',
    '{"state": {"type": "NOPE", "state_details": []}, "type": 5, "flow_id": "nope", "deployment_id": 7}',
    '{"flows": {"id": {"any_": "x"}}, "flow_runs": {"name": {"like_": 5}, "tags": {"all_": 5}}}',
    '{"slots": -1, "names": 5, "limit": "x", "active": "maybe", "schedules": "x", "work_queue_name": 5}',
    '{"account_role_id": "nope", "workspace_role_id": 5, "scopes": "x", "members": 5, "entries": "x"}',
    '{"expires_at": "not a date", "since": "x", "until": 5, "cursor": []}',
    '{"name": "\\ud800", "value": 1e999, "limit": 1000000000000000000000000000000}',
    '{"name": "x", "value": ' + "[" * 5_000 + "]" * 5_000 + "}",
]

# Rows a refused request may still write: its audit record, a key's last-use stamp, journals.
MAY_WRITE = {"audit.AuditLogEntry", "audit.AuditChain", "accounts.ApiKey", "accounts.ScimActivity"}


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model._base_manager.count()
        for model in apps.get_models()
        if model._meta.label not in MAY_WRITE and not model._meta.label.startswith("auditlog.")
    }


def test_there_are_routes_to_sweep():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
def test_no_malformed_body_is_a_500_and_a_refused_one_stores_nothing(tenant, api_client, route, method):
    owner = UserFactory()
    membership_add(account=tenant.account, user=owner, role=AccountRole.OWNER, actor=SYSTEM)
    api_client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(owner=owner, name='k', actor=SYSTEM)[1]}"
    )
    path = route.build(account_ref=tenant.account.id, workspace_ref=tenant.workspace.id)
    for body in BODIES:
        before = _row_counts()
        response = getattr(api_client, method.lower())(
            path, data=body.encode(), content_type="application/json"
        )
        where = f"{method} {path} {body[:60]!r}"
        assert response.status_code < 500, (where, response.content[:300])
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), where
            changed = {k for k, v in _row_counts().items() if before[k] != v}
            assert not changed, (where, response.status_code, changed)
