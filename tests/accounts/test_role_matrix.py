"""The role × route matrix, generated from the permission table and the URL resolver: for every
workspace route and every built-in workspace role (and every account route and account role), a
real request is refused with 403 exactly when the role lacks what the route declares; a principal
of another account gets 404 and changes nothing."""

from __future__ import annotations

import pytest

from access.views import MEMBERS
from accounts.api_keys.services import api_key_create
from accounts.permissions import ACCOUNT_ROLE_PERMISSIONS, WORKSPACE_ROLE_SCOPES, AccountRole, WorkspaceRole
from accounts.services import membership_add, workspace_access_grant
from audit.actors import SYSTEM
from tests.conftest import bearer, make_tenant
from tests.factories import ServiceAccountFactory, UserFactory
from tests.routes import account_routes, workspace_routes

pytestmark = pytest.mark.django_db

WORKSPACE_CASES = [
    (route, method)
    for route in workspace_routes()
    for method in route.methods()
    if route.view_class.declared_requirement(method) != MEMBERS
]
ACCOUNT_CASES = [
    (route, method)
    for route in account_routes()
    for method in route.methods()
    if route.view_class.declared_requirement(method) != MEMBERS
]


def _call(client, method: str, path: str):
    return getattr(client, method.lower())(path, {}, format="json")


def _refused_for_lack_of(response, what: str) -> bool:
    """A 403 for a missing scope or permission (not, say, Prefect's 403 for a bad page token)."""
    if response.status_code != 403:
        return False
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        return False
    return f"Missing the {what}" in str(detail)


def test_the_matrix_is_not_empty():
    assert len(WORKSPACE_CASES) > 50 and len(ACCOUNT_CASES) > 20


@pytest.mark.parametrize(
    ("route", "method"), WORKSPACE_CASES, ids=[f"{m} {r.template}" for r, m in WORKSPACE_CASES]
)
def test_workspace_roles_against_every_workspace_route(api_client, tenant, route, method):
    required = route.view_class.declared_requirement(method)
    keys = {}
    for role in WorkspaceRole:
        robot = ServiceAccountFactory(account=tenant.account)
        workspace_access_grant(workspace=tenant.workspace, principal=robot, role=role, actor=SYSTEM)
        keys[role] = api_key_create(owner=robot, name=role, actor=SYSTEM)[1]
    path = route.build(account_ref=str(tenant.account.id), workspace_ref=str(tenant.workspace.id))
    for role, key in keys.items():
        response = _call(bearer(api_client, key), method, path)
        assert response.status_code < 500, (role, method, path, response.content[:300])
        refused = _refused_for_lack_of(response, "scope")
        if required in WORKSPACE_ROLE_SCOPES[role]:
            assert not refused, f"{role} holds {required} but was refused on {method} {path}"
        else:
            assert refused, f"{role} lacks {required} but got {response.status_code} on {method} {path}"


@pytest.mark.parametrize(
    ("route", "method"), ACCOUNT_CASES, ids=[f"{m} {r.template}" for r, m in ACCOUNT_CASES]
)
def test_account_roles_against_every_account_route(api_client, tenant, route, method):
    required = route.view_class.declared_requirement(method)
    path = route.build(account_ref=str(tenant.account.id))
    for role in AccountRole:
        person = UserFactory()
        membership_add(account=tenant.account, user=person, role=role, actor=SYSTEM)
        key = api_key_create(owner=person, name=role, actor=SYSTEM)[1]
        response = _call(bearer(api_client, key), method, path)
        assert response.status_code < 500, (role, method, path, response.content[:300])
        refused = _refused_for_lack_of(response, "permission")
        if required in ACCOUNT_ROLE_PERMISSIONS[role]:
            assert not refused, f"{role} holds {required} but was refused on {method} {path}"
        else:
            assert refused, f"{role} lacks {required} but got {response.status_code} on {method} {path}"
    # The Owner of another account: 404, whatever the route.
    other = make_tenant()
    outsider = UserFactory()
    membership_add(account=other.account, user=outsider, role=AccountRole.OWNER, actor=SYSTEM)
    key = api_key_create(owner=outsider, name="outsider", actor=SYSTEM)[1]
    assert _call(bearer(api_client, key), method, path).status_code == 404
