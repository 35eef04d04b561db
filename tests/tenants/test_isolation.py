"""Cross-tenant: nothing of account B can be reached, read or changed from account A."""

from __future__ import annotations

import pytest
from django.apps import apps

from tests.conftest import bearer
from tests.routes import workspace_routes

ROUTES = workspace_routes()
CASES = [(route, method) for route in ROUTES for method in route.methods()]


def _row_counts() -> dict[str, int]:
    counts = {}
    for model in apps.get_models():
        manager = model._base_manager
        counts[model._meta.label] = manager.count()
    return counts


def _call(client, method: str, path: str):
    return getattr(client, method.lower())(path, data={}, format="json")


def test_there_are_workspace_routes_to_check():
    assert len(CASES) >= 4


@pytest.mark.parametrize("by", ["id", "handle"])
@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
@pytest.mark.django_db
def test_a_principal_of_account_a_gets_404_on_every_route_of_account_b(
    two_workspaces, api_client, route, method, by
):
    a, b = two_workspaces
    target = {"account_ref": b.account.id, "workspace_ref": b.workspace.id}
    if by == "handle":
        target = {"account_ref": b.account.handle, "workspace_ref": b.workspace.handle}
    path = route.build(**target)
    for key in (a.member_key, a.service_key):
        before = _row_counts()
        response = _call(bearer(api_client, key), method, path)
        assert response.status_code == 404, (method, path, response.status_code, response.content)
        assert response.json() == {"detail": "Not Found"}
        after = _row_counts()
        # A refused request writes nothing (ApiKey's last-used stamp aside, which is not tenant data).
        assert {k: v for k, v in after.items() if before[k] != v} == {}


@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m} {r.template}" for r, m in CASES])
@pytest.mark.django_db
def test_a_workspace_of_b_addressed_under_account_a_is_not_found(two_workspaces, api_client, route, method):
    """Mixing A's account id with B's workspace id must not resolve B's workspace."""
    a, b = two_workspaces
    path = route.build(account_ref=a.account.id, workspace_ref=b.workspace.id)
    response = _call(bearer(api_client, a.member_key), method, path)
    assert response.status_code == 404


@pytest.mark.django_db
def test_the_same_key_works_on_its_own_workspace(two_workspaces, api_client):
    a, _ = two_workspaces
    for prefix in (a.prefix, a.handle_prefix):
        response = bearer(api_client, a.service_key).get(f"{prefix}/admin/version")
        assert response.status_code == 200
        assert response.json().startswith("3.")


@pytest.mark.django_db
def test_unknown_account_and_workspace_answer_the_same_404_as_a_foreign_one(two_workspaces, api_client):
    a, b = two_workspaces
    client = bearer(api_client, a.member_key)
    foreign = client.get(f"{b.prefix}/health")
    missing = client.get("/api/accounts/00000000-0000-0000-0000-000000000000/workspaces/nope/health")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


@pytest.mark.django_db
def test_a_member_without_a_grant_on_the_workspace_gets_404(api_client, tenant):
    from accounts.api_keys.services import api_key_create
    from accounts.permissions import AccountRole
    from audit.actors import SYSTEM
    from tests.factories import MembershipFactory, UserFactory

    outsider = UserFactory()
    MembershipFactory(account=tenant.account, user=outsider, role=AccountRole.MEMBER)
    _, key = api_key_create(owner=outsider, name="k", actor=SYSTEM)
    assert bearer(api_client, key).get(f"{tenant.prefix}/health").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_account_owner_and_admin_reach_every_workspace_without_a_grant(api_client, tenant, role):
    from accounts.api_keys.services import api_key_create
    from audit.actors import SYSTEM
    from tests.factories import MembershipFactory, UserFactory

    person = UserFactory()
    MembershipFactory(account=tenant.account, user=person, role=role)
    _, key = api_key_create(owner=person, name="k", actor=SYSTEM)
    assert bearer(api_client, key).get(f"{tenant.prefix}/health").status_code == 200


@pytest.mark.django_db
def test_unauthenticated_requests_are_401_before_anything_is_resolved(two_workspaces, api_client):
    a, _ = two_workspaces
    for path in (f"{a.prefix}/health", "/api/accounts/x/workspaces/y/health"):
        response = api_client.get(path)
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid authentication credentials"}


@pytest.mark.django_db
def test_session_login_reaches_the_workspace_api(client, tenant):
    client.force_login(tenant.member)
    assert client.get(f"{tenant.prefix}/health").status_code == 200
