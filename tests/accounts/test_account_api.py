"""The account API in Prefect Cloud's shapes: roles, bots and key rotation, teams, workspace access
(user/bot/team), default roles, memberships, invitations, key lifetime and scoped keys, and the
"why" endpoint. Bad input answers 422/404 with nothing changed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.models import CustomRole, Invitation, ServiceAccount, Team, WorkspaceRoleGrant
from accounts.permissions import builtin_account_role_id, builtin_workspace_role_id
from accounts.services import membership_add
from accounts.tenancy import account_create, workspace_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DEVELOPER = str(builtin_workspace_role_id("developer"))
VIEWER = str(builtin_workspace_role_id("viewer"))
MEMBER_ROLE = str(builtin_account_role_id("member"))
OWNER_ROLE = str(builtin_account_role_id("owner"))


@dataclass
class Org:
    account: object
    workspace: object
    owner: object
    owner_key: str

    @property
    def api(self) -> str:
        return f"/api/accounts/{self.account.id}"

    @property
    def ws(self) -> str:
        return f"{self.api}/workspaces/{self.workspace.id}"


def make_org(plan: str = "enterprise") -> Org:
    owner = UserFactory()
    account = account_create(name=f"Org of {owner.email}", owner=owner, actor=SYSTEM, plan=plan)
    workspace = workspace_create(account=account, name="Production", actor=SYSTEM)
    _, key = api_key_create(owner=owner, name="owner", actor=SYSTEM)
    return Org(account, workspace, owner, key)


def client(key: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return c


@pytest.fixture
def org() -> Org:
    return make_org()


def add_member(org: Org, role: str = "member"):
    person = UserFactory()
    membership_add(account=org.account, user=person, role=role, actor=SYSTEM)
    _, key = api_key_create(owner=person, name="k", actor=SYSTEM)
    return person, key


def _events(org) -> list[str]:
    return list(
        AuditLogEntry.objects.filter(account=org.account)
        .order_by("occurred")
        .values_list("api_name", flat=True)
    )


class TestCatalogues:
    def test_permissions_and_scopes(self, org):
        c = client(org.owner_key)
        permissions = c.get("/api/accounts/permissions").json()
        assert "create:bot" in permissions and "read:workspace" in permissions
        scopes = {s["name"]: s for s in c.get("/api/workspace_scopes").json()}
        assert set(scopes["manage_deployments"]["includes_scopes"]) >= {
            "write_deployments",
            "see_deployments",
        }
        assert scopes["see_flows"]["includes_scopes"] == []

    def test_built_in_roles_are_found_by_name(self, org):
        c = client(org.owner_key)
        roles = c.post(
            f"{org.api}/workspace_roles/filter",
            {"workspace_roles": {"name": {"any_": ["Developer"]}}},
            format="json",
        ).json()
        assert [(r["id"], r["account_id"]) for r in roles] == [(DEVELOPER, None)]
        account_roles = c.post(
            f"{org.api}/account_roles/filter", {"account_roles": {"name": {"any_": ["Owner"]}}}, format="json"
        ).json()
        assert account_roles[0]["id"] == OWNER_ROLE and "delete:account" in account_roles[0]["permissions"]


class TestBots:
    def test_create_read_and_the_key_only_once(self, org):
        c = client(org.owner_key)
        response = c.post(f"{org.api}/bots/", {"name": "ci", "account_role_id": MEMBER_ROLE}, format="json")
        assert response.status_code == 201, response.content
        bot = response.json()
        assert bot["account_role_name"] == "Member" and bot["api_key"]["key"].startswith("pnb_")
        read = c.get(f"{org.api}/bots/{bot['id']}").json()
        assert "key" not in read["api_key"] and read["api_key"]["id"] == bot["api_key"]["id"]
        listed = c.post(
            f"{org.api}/bots/filter", {"service_accounts": {"name": {"any_": ["ci"]}}}, format="json"
        ).json()
        assert [b["id"] for b in listed] == [bot["id"]]
        # Granted a workspace role, the bot's key works there.
        assert client(bot["api_key"]["key"]).get(f"{org.ws}/flows/filter").status_code == 404
        grant = c.post(
            f"{org.ws}/bot_access/", [{"workspace_role_id": VIEWER, "bot_id": bot["id"]}], format="json"
        )
        assert grant.status_code == 200 and grant.json()[0]["bot_id"] == bot["id"]
        assert (
            client(bot["api_key"]["key"]).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        )

    def test_rotation_without_grace_ends_the_old_key_at_once(self, org):
        c = client(org.owner_key)
        bot = c.post(f"{org.api}/bots/", {"name": "ci"}, format="json").json()
        c.post(f"{org.ws}/bot_access/", [{"workspace_role_id": VIEWER, "bot_id": bot["id"]}], format="json")
        old = bot["api_key"]["key"]
        rotated = c.post(
            f"{org.api}/bots/{bot['id']}/rotate_api_key", {"api_key_expiration": None}, format="json"
        )
        assert rotated.status_code == 201
        new = rotated.json()["api_key"]["key"]
        assert client(old).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 401
        assert client(new).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200

    def test_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(self, org):
        c = client(org.owner_key)
        bot = c.post(f"{org.api}/bots/", {"name": "ci"}, format="json").json()
        c.post(f"{org.ws}/bot_access/", [{"workspace_role_id": VIEWER, "bot_id": bot["id"]}], format="json")
        old = bot["api_key"]["key"]
        rotated = c.post(
            f"{org.api}/bots/{bot['id']}/rotate_api_key", {"old_key_expires_in_seconds": 600}, format="json"
        )
        new = rotated.json()["api_key"]["key"]
        assert client(old).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        later = timezone.now() + dt.timedelta(seconds=601)
        with mock.patch("django.utils.timezone.now", return_value=later):
            assert client(old).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 401
            assert client(new).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200

    def test_bad_grace_and_a_member_cannot_create_bots(self, org):
        c = client(org.owner_key)
        bot = c.post(f"{org.api}/bots/", {"name": "ci"}, format="json").json()
        bad = c.post(
            f"{org.api}/bots/{bot['id']}/rotate_api_key", {"old_key_expires_in_seconds": 10**9}, format="json"
        )
        assert bad.status_code == 422
        _, member_key = add_member(org)
        assert client(member_key).post(f"{org.api}/bots/", {"name": "x"}, format="json").status_code == 403
        assert not ServiceAccount.objects.filter(name="x").exists()

    def test_another_account_sees_nothing(self, org):
        other = make_org()
        bot = client(org.owner_key).post(f"{org.api}/bots/", {"name": "ci"}, format="json").json()
        c = client(other.owner_key)
        assert c.get(f"{org.api}/bots/{bot['id']}").status_code == 404
        assert c.get(f"{other.api}/bots/{bot['id']}").status_code == 404
        assert c.delete(f"{other.api}/bots/{bot['id']}").status_code == 404
        assert ServiceAccount.objects.filter(pk=bot["id"]).exists()


class TestCustomRoles:
    def test_inheriting_role_grants_parent_and_own_scopes(self, org):
        c = client(org.owner_key)
        body = {
            "name": "Variable editor",
            "description": "",
            "scopes": ["write_variables"],
            "inherited_role_id": VIEWER,
        }
        role = c.post(f"{org.api}/workspace_roles/", body, format="json")
        assert role.status_code == 201, role.content
        role = role.json()
        assert {"see_flows", "write_variables", "see_variables"} <= set(role["permissions"])
        person, key = add_member(org)
        upsert = c.post(
            f"{org.ws}/user_access/",
            [{"workspace_role_id": role["id"], "user_id": str(person.id)}],
            format="json",
        )
        assert upsert.status_code == 200 and upsert.json()[0]["workspace_role_id"] == role["id"]
        pc = client(key)
        assert pc.post(f"{org.ws}/variables/", {"name": "v1", "value": 1}, format="json").status_code == 201
        assert pc.post(f"{org.ws}/flows/", {"name": "f"}, format="json").status_code == 403
        # Granted, it cannot be deleted.
        assert c.delete(f"{org.api}/workspace_roles/{role['id']}").status_code == 409
        assert CustomRole.objects.filter(pk=role["id"]).exists()

    def test_unknown_scopes_and_foreign_roles_change_nothing(self, org):
        c = client(org.owner_key)
        bad = c.post(
            f"{org.api}/workspace_roles/", {"name": "x", "scopes": ["see_everything"]}, format="json"
        )
        assert bad.status_code == 422 and "see_everything" in bad.json()["detail"]
        assert not CustomRole.objects.exists()
        other = make_org()
        foreign = (
            client(other.owner_key)
            .post(f"{other.api}/workspace_roles/", {"name": "theirs", "scopes": []}, format="json")
            .json()
        )
        person, _ = add_member(org)
        grant = c.post(
            f"{org.ws}/user_access/",
            [{"workspace_role_id": foreign["id"], "user_id": str(person.id)}],
            format="json",
        )
        assert grant.status_code == 404
        assert not WorkspaceRoleGrant.objects.unscoped().filter(user=person).exists()

    def test_the_plan_must_include_custom_roles(self):
        team_org = make_org(plan="team")
        response = client(team_org.owner_key).post(
            f"{team_org.api}/workspace_roles/", {"name": "x", "scopes": []}, format="json"
        )
        assert response.status_code == 403 and not CustomRole.objects.exists()


class TestTeamsAndDefaults:
    def test_team_grants_reach_members_until_they_leave(self, org):
        c = client(org.owner_key)
        person, key = add_member(org)
        team = c.post(f"{org.api}/teams", {"name": "Data", "description": "d"}, format="json")
        assert team.status_code == 201
        team = team.json()
        members = c.put(
            f"{org.api}/teams/{team['id']}/members",
            {"members": [{"member_id": str(person.id), "member_type": "user"}]},
            format="json",
        )
        assert members.status_code == 200 and [m["id"] for m in members.json()["memberships"]] == [
            str(person.id)
        ]
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 404
        grant = c.put(
            f"{org.ws}/team_access/", [{"workspace_role_id": DEVELOPER, "team_id": team["id"]}], format="json"
        )
        assert grant.status_code == 200 and grant.json()[0]["team_id"] == team["id"]
        assert client(key).post(f"{org.ws}/flows/", {"name": "f"}, format="json").status_code == 201
        explain = c.get(f"{org.ws}/access/explain", {"actor": str(person.id), "scope": "manage_flows"}).json()
        assert explain["allowed"] is True
        assert [(s["via"], s["team_name"]) for s in explain["granted_by"]] == [("team", "Data")]
        assert c.delete(f"{org.api}/teams/{team['id']}/members/{person.id}").status_code == 204
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 404

    def test_a_team_of_another_account_is_not_found(self, org):
        other = make_org()
        theirs = client(other.owner_key).post(f"{other.api}/teams", {"name": "T"}, format="json").json()
        response = client(org.owner_key).put(
            f"{org.ws}/team_access/", [{"workspace_role_id": VIEWER, "team_id": theirs["id"]}], format="json"
        )
        assert response.status_code == 404
        assert not WorkspaceRoleGrant.objects.unscoped().filter(team_id=theirs["id"]).exists()
        assert client(org.owner_key).get(f"{org.api}/teams/{theirs['id']}").status_code == 404

    def test_default_role_for_members_without_grants(self, org):
        c = client(org.owner_key)
        _, key = add_member(org)
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 404
        patched = c.patch(
            f"{org.api}/workspaces/{org.workspace.id}", {"default_workspace_role_id": VIEWER}, format="json"
        )
        assert patched.status_code == 200 and patched.json()["default_workspace_role_id"] == VIEWER
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        assert client(key).post(f"{org.ws}/flows/", {"name": "f"}, format="json").status_code == 403


class TestMemberships:
    def test_filter_change_and_last_owner(self, org):
        c = client(org.owner_key)
        person, _ = add_member(org)
        found = c.post(
            f"{org.api}/account_memberships/filter",
            {"account_memberships": {"email": {"any_": [person.email]}}},
            format="json",
        ).json()
        assert [m["email"] for m in found] == [person.email]
        assert (
            c.patch(
                f"{org.api}/account_memberships/{found[0]['id']}",
                {"account_role_id": str(builtin_account_role_id("admin"))},
                format="json",
            ).status_code
            == 204
        )
        mine = c.post(
            f"{org.api}/account_memberships/filter",
            {"account_memberships": {"email": {"any_": [org.owner.email]}}},
            format="json",
        ).json()[0]
        demote = c.patch(
            f"{org.api}/account_memberships/{mine['id']}", {"account_role_id": MEMBER_ROLE}, format="json"
        )
        assert demote.status_code == 409
        assert c.delete(f"{org.api}/account_memberships/{mine['id']}").status_code == 409

    def test_removing_a_member_ends_their_access_at_once(self, org):
        c = client(org.owner_key)
        person, key = add_member(org)
        c.post(
            f"{org.ws}/user_access/",
            [{"workspace_role_id": VIEWER, "user_id": str(person.id)}],
            format="json",
        )
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        membership = c.post(
            f"{org.api}/account_memberships/filter",
            {"account_memberships": {"email": {"any_": [person.email]}}},
            format="json",
        ).json()[0]
        assert c.delete(f"{org.api}/account_memberships/{membership['id']}").status_code == 204
        assert client(key).post(f"{org.ws}/flows/filter", {}, format="json").status_code == 404


class TestInvitations:
    def test_invitations_hold_seats_and_are_single_use(self):
        small = make_org(plan="hobby")  # two seats: the owner and one more
        c = client(small.owner_key)
        invited = c.post(
            f"{small.api}/invitations/",
            {
                "email": "new@example.test",
                "workspace_grants": [{"workspace_id": str(small.workspace.id), "workspace_role_id": VIEWER}],
            },
            format="json",
        )
        assert invited.status_code == 201, invited.content
        invitation = invited.json()[0]
        assert (
            c.post(f"{small.api}/invitations/", {"email": "other@example.test"}, format="json").status_code
            == 403
        )
        newcomer = UserFactory(email="new@example.test")
        _, key = api_key_create(owner=newcomer, name="k", actor=SYSTEM)
        nc = client(key)
        assert (
            nc.post(
                f"/api/invitations/{invitation['id']}/accept", {"token": "wrong"}, format="json"
            ).status_code
            == 404
        )
        accepted = nc.post(
            f"/api/invitations/{invitation['id']}/accept", {"token": invitation["token"]}, format="json"
        )
        assert accepted.status_code == 201, accepted.content
        assert nc.post(f"{small.ws}/flows/filter", {}, format="json").status_code == 200
        again = nc.post(
            f"/api/invitations/{invitation['id']}/accept", {"token": invitation["token"]}, format="json"
        )
        assert again.status_code == 409
        assert "invitation.accepted" in _events(small)

    def test_an_expired_invitation_cannot_be_used(self, org):
        c = client(org.owner_key)
        invitation = c.post(f"{org.api}/invitations/", {"email": "late@example.test"}, format="json").json()[
            0
        ]
        late = UserFactory(email="late@example.test")
        _, key = api_key_create(owner=late, name="k", actor=SYSTEM)
        with mock.patch("django.utils.timezone.now", return_value=timezone.now() + dt.timedelta(days=8)):
            response = client(key).post(
                f"/api/invitations/{invitation['id']}/accept", {"token": invitation["token"]}, format="json"
            )
        assert response.status_code == 409
        assert Invitation.objects.get(pk=invitation["id"]).status == "PENDING"


class TestKeys:
    def test_max_lifetime_is_enforced(self, org):
        c = client(org.owner_key)
        assert (
            c.patch(f"{org.api}/settings", {"max_api_key_lifetime_seconds": 3600}, format="json").status_code
            == 200
        )
        url = f"/api/users/{org.owner.id}/api_keys"
        assert c.post(url, {"name": "forever"}, format="json").status_code == 422
        too_long = (timezone.now() + dt.timedelta(hours=2)).isoformat()
        assert c.post(url, {"name": "long", "expiration": too_long}, format="json").status_code == 422
        fine = (timezone.now() + dt.timedelta(minutes=30)).isoformat()
        created = c.post(url, {"name": "short", "expiration": fine}, format="json")
        assert created.status_code == 201 and created.json()["key"].startswith("pnu_")
        assert c.post(f"{org.api}/bots/", {"name": "no-expiry"}, format="json").status_code == 422
        assert not ServiceAccount.objects.filter(name="no-expiry").exists()

    def test_a_scoped_key_holds_no_more_than_its_scopes(self, org):
        c = client(org.owner_key)
        created = c.post(
            f"/api/users/{org.owner.id}/api_keys",
            {"name": "read-only", "scopes": ["see_flows"]},
            format="json",
        )
        assert created.status_code == 201
        scoped = client(created.json()["key"])
        assert scoped.post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        assert scoped.post(f"{org.ws}/flows/", {"name": "f"}, format="json").status_code == 403
        bad = c.post(f"/api/users/{org.owner.id}/api_keys", {"name": "x", "scopes": ["root"]}, format="json")
        assert bad.status_code == 422

    def test_only_the_owner_manages_their_keys(self, org):
        _, member_key = add_member(org)
        assert client(member_key).get(f"/api/users/{org.owner.id}/api_keys").status_code == 404
        keys = client(org.owner_key).get(f"/api/users/{org.owner.id}/api_keys").json()
        assert keys and all("key" not in k for k in keys)


class TestCost:
    def test_fifty_team_grants_cost_one_memo_lookup_per_request(
        self, org, django_assert_max_num_queries, django_assert_num_queries
    ):
        person, key = add_member(org)
        c = client(org.owner_key)
        for i in range(50):
            workspace = workspace_create(account=org.account, name=f"W{i}", actor=SYSTEM)
            team = Team.objects.create(account=org.account, name=f"T{i}")
            team.members.create(user=person)
            WorkspaceRoleGrant.objects.for_workspace(workspace.pk).create(
                workspace=workspace, team=team, role="viewer"
            )
        team = Team.objects.create(account=org.account, name="main")
        team.members.create(user=person)
        c.put(
            f"{org.ws}/team_access/", [{"workspace_role_id": VIEWER, "team_id": str(team.id)}], format="json"
        )
        pc = client(key)
        # Cold: the key (and its first-use stamp), account, workspace, membership, every grant
        # (direct and through teams) in one query, the default role, the account's IP allowlist.
        # Warm: none at all.
        with django_assert_max_num_queries(8):
            assert pc.get(f"{org.ws}/health").status_code == 200
        with django_assert_num_queries(0):
            assert pc.get(f"{org.ws}/health").status_code == 200


class TestAccount:
    def test_read_and_rename(self, org):
        c = client(org.owner_key)
        for path in (org.api, f"{org.api}/"):
            body = c.get(path).json()
            assert body["id"] == str(org.account.id) and body["plan_type"] == "ENTERPRISE"
            assert "ip_allowlist" in body["features"] and body["settings"]["enforce_ip_allowlist"] is False
        renamed = c.patch(org.api, {"name": "Renamed", "handle": "renamed-org"}, format="json")
        assert renamed.status_code == 200 and renamed.json()["handle"] == "renamed-org"
        assert c.get("/api/accounts/renamed-org").json()["name"] == "Renamed"
        _, member_key = add_member(org)
        assert client(member_key).get(org.api).status_code == 200
        assert client(member_key).patch(org.api, {"name": "x"}, format="json").status_code == 403
        assert client(make_org().owner_key).get(org.api).status_code == 404
        assert "account.updated" in _events(org)


class TestInvitationForSomeoneNew:
    def test_accepting_creates_the_user_and_membership(self, org):
        c = client(org.owner_key)
        invitation = c.post(f"{org.api}/invitations/", {"email": "fresh@example.test"}, format="json").json()[
            0
        ]
        anonymous = APIClient()
        url = f"/api/invitations/{invitation['id']}/accept"
        assert anonymous.post(url, {"token": invitation["token"]}, format="json").status_code == 401
        weak = anonymous.post(url, {"token": invitation["token"], "password": "123"}, format="json")
        assert weak.status_code == 422
        ok = anonymous.post(
            url,
            {"token": invitation["token"], "password": "a long enough password", "first_name": "Ada"},
            format="json",
        )
        assert ok.status_code == 201, ok.content
        assert ok.json()["email"] == "fresh@example.test" and ok.json()["first_name"] == "Ada"
        again = anonymous.post(
            url, {"token": invitation["token"], "password": "a long enough password"}, format="json"
        )
        assert again.status_code == 409
