"""Group mappings: the admin's table (account API) and what an SSO sign-in does with the groups the
identity provider sends (teams and workspace roles given and taken away)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import TeamMember, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole
from accounts.rbac import team_create
from accounts.roles import builtin_workspace_role_id
from audit.actors import SYSTEM
from tests.accounts.sso.conftest import audit_events, oidc_idp, oidc_sign_in
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(acme):
    admin = UserFactory(email="admin@acme.example")
    MembershipFactory(account=acme.account, user=admin, role=AccountRole.ADMIN)
    api = APIClient()
    api.force_authenticate(admin)
    return api


def _url(acme) -> str:
    return f"/api/accounts/{acme.account.id}/sso/group_mappings"


def test_mappings_are_replaced_whole_and_audited(acme, admin_api):
    team = team_create(account=acme.account, name="Engineers", actor=SYSTEM)
    body = {
        "mappings": [
            {"group": "engineers", "team_id": str(team.id)},
            {
                "group": "admins",
                "workspace_id": str(acme.workspace.id),
                "workspace_role_id": str(builtin_workspace_role_id("owner")),
            },
        ]
    }
    saved = admin_api.put(_url(acme), body, format="json")
    assert saved.status_code == 200, saved.json()
    assert [m["group"] for m in saved.json()["mappings"]] == ["admins", "engineers"]
    assert admin_api.get(_url(acme)).json() == saved.json()
    (changed,) = audit_events(acme.account, "sso.group-mappings-changed")
    assert changed.payload["before"] == [] and len(changed.payload["after"]) == 2

    assert admin_api.put(_url(acme), {"mappings": []}, format="json").json() == {"mappings": []}


@pytest.mark.parametrize(
    "entry",
    [
        "engineers",
        {"group": ""},
        {"group": "x"},
        {"group": "x", "team_id": "not-a-uuid"},
        {"group": "x", "team_id": "00000000-0000-0000-0000-000000000000"},
        {"group": "x", "workspace_id": "00000000-0000-0000-0000-000000000000", "workspace_role_id": "x"},
        {"group": "x", "team_id": None, "workspace_id": None},
        {"group": "x", "colour": "blue"},
    ],
)
def test_a_bad_mapping_is_a_422_and_nothing_changes(acme, admin_api, entry):
    team = team_create(account=acme.account, name="Keep", actor=SYSTEM)
    admin_api.put(_url(acme), {"mappings": [{"group": "keep", "team_id": str(team.id)}]}, format="json")
    response = admin_api.put(_url(acme), {"mappings": [entry]}, format="json")
    assert response.status_code == 422 and "detail" in response.json()
    assert [m["group"] for m in admin_api.get(_url(acme)).json()["mappings"]] == ["keep"]


def test_another_accounts_team_or_workspace_cannot_be_mapped(acme, admin_api):
    from tests.conftest import make_tenant

    other = make_tenant(name="Other")
    their_team = team_create(account=other.account, name="Theirs", actor=SYSTEM)
    for entry in (
        {"group": "g", "team_id": str(their_team.id)},
        {
            "group": "g",
            "workspace_id": str(other.workspace.id),
            "workspace_role_id": str(builtin_workspace_role_id("viewer")),
        },
    ):
        assert admin_api.put(_url(acme), {"mappings": [entry]}, format="json").status_code == 422


def test_members_read_but_do_not_change_mappings(acme):
    api = APIClient()
    api.force_authenticate(acme.member)
    assert api.put(_url(acme), {"mappings": []}, format="json").status_code == 403


def test_sign_in_applies_the_groups_and_a_later_sign_in_takes_them_away(web, acme, oidc, admin_api):
    engineers = team_create(account=acme.account, name="Engineers", actor=SYSTEM)
    untouched = team_create(account=acme.account, name="Hand-made", actor=SYSTEM)
    second = WorkspaceFactory(account=acme.account)
    mappings = [
        {"group": "Engineers", "team_id": str(engineers.id)},
        {
            "group": "admins",
            "workspace_id": str(acme.workspace.id),
            "workspace_role_id": str(builtin_workspace_role_id("viewer")),
        },
        {
            "group": "admins",
            "workspace_id": str(acme.workspace.id),
            "workspace_role_id": str(builtin_workspace_role_id("developer")),
        },
        {
            "group": "nobody-holds-this",
            "workspace_id": str(second.id),
            "workspace_role_id": str(builtin_workspace_role_id("owner")),
        },
    ]
    assert admin_api.put(_url(acme), {"mappings": mappings}, format="json").status_code == 200
    idp = oidc_idp(acme.account, oidc)
    assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
    alice = User.objects.get(email="alice@acme.example")
    TeamMember.objects.create(team=untouched, user=alice)

    assert set(TeamMember.objects.filter(user=alice).values_list("team__name", flat=True)) == {
        "Engineers",
        "Hand-made",
    }
    grant = WorkspaceRoleGrant.objects.for_workspace(acme.workspace.id).get(user=alice)
    assert grant.role == "developer"  # the strongest of the mapped roles
    assert not WorkspaceRoleGrant.objects.for_workspace(second.id).filter(user=alice).exists()
    added = audit_events(acme.account, "team.member-added")
    assert added and added[-1].actor_kind == "system" and added[-1].payload["via"] == "sso group mapping"

    # The IdP now sends no groups that are mapped: the mapped team and grant go, the rest stays.
    oidc.add_account("alice", {**_alice_claims(), "groups": ["unrelated"]})
    try:
        web.post("/logout/")
        assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
    finally:
        oidc.add_account("alice", _alice_claims())
    assert list(TeamMember.objects.filter(user=alice).values_list("team__name", flat=True)) == ["Hand-made"]
    assert not WorkspaceRoleGrant.objects.for_workspace(acme.workspace.id).filter(user=alice).exists()


def test_a_sign_in_without_groups_changes_nothing(web, acme, oidc, admin_api):
    engineers = team_create(account=acme.account, name="Engineers", actor=SYSTEM)
    admin_api.put(
        _url(acme), {"mappings": [{"group": "engineers", "team_id": str(engineers.id)}]}, format="json"
    )
    idp = oidc_idp(acme.account, oidc)
    oidc.add_account("nogroups", {"sub": "ng-1", "email": "ng@acme.example", "email_verified": True})
    assert oidc_sign_in(web, idp, oidc, "nogroups").status_code == 302
    user = User.objects.get(email="ng@acme.example")
    TeamMember.objects.create(team=engineers, user=user)
    web.post("/logout/")
    assert oidc_sign_in(web, idp, oidc, "nogroups").status_code == 302
    assert TeamMember.objects.filter(team=engineers, user=user).exists()


def _alice_claims() -> dict:
    from tests.accounts.sso.conftest import OIDC_PEOPLE

    return dict(OIDC_PEOPLE["alice"])
