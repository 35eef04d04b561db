"""SCIM 2.0 per account: discovery, authentication, people and groups as Okta and Microsoft Entra ID
drive them, deprovisioning that takes effect at once, tenant bounds, seats and the journal."""

from __future__ import annotations

import dataclasses

import pytest
from django.test import Client

from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create
from accounts.models import AccountMembership, ScimActivity, ScimUser, Team, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole, WorkspaceRole
from accounts.scim.services import scim_token_create, scim_token_revoke
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from billing import plans
from tests.conftest import make_tenant
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Scim:
    def __init__(self, account, token: str):
        self.account = account
        self.base = f"/scim/v2/accounts/{account.id}"
        self.http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def get(self, path, **params):
        return self.http.get(f"{self.base}/{path}", params)

    def post(self, path, body):
        return self.http.post(f"{self.base}/{path}", body, content_type=SCIM_JSON)

    def put(self, path, body):
        return self.http.put(f"{self.base}/{path}", body, content_type=SCIM_JSON)

    def patch(self, path, *operations):
        return self.http.patch(
            f"{self.base}/{path}",
            {"schemas": [PATCH], "Operations": list(operations)},
            content_type=SCIM_JSON,
        )

    def delete(self, path):
        return self.http.delete(f"{self.base}/{path}")


@pytest.fixture
def tenant_scim(tenant):
    _, raw = scim_token_create(account=tenant.account, actor=SYSTEM, name="okta")
    return Scim(tenant.account, raw)


def okta_user(email="ada@corp.example", external_id="00u1", **extra):
    """The POST Okta sends (it carries a password, which is ignored)."""
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": "Ada Lovelace",
        "externalId": external_id,
        "password": "ignored-Secret-1",
        "active": True,
        **extra,
    }


def create_user(scim, **kwargs) -> dict:
    response = scim.post("Users", okta_user(**kwargs))
    assert response.status_code == 201, response.content
    return response.json()


def error_of(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status) and body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type
    return body


class TestDiscovery:
    def test_service_provider_config_resource_types_and_schemas(self, tenant_scim):
        config = tenant_scim.get("ServiceProviderConfig")
        assert config.status_code == 200 and config["Content-Type"].startswith(SCIM_JSON)
        assert config.json()["patch"]["supported"] is True and config.json()["bulk"]["supported"] is False
        types = tenant_scim.get("ResourceTypes").json()
        assert types["totalResults"] == 2 and isinstance(types["itemsPerPage"], int)
        assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
        assert tenant_scim.get("ResourceTypes/User").json()["endpoint"] == "/Users"
        schemas = tenant_scim.get("Schemas").json()
        assert {s["id"] for s in schemas["Resources"]} == {USER, GROUP, ENTERPRISE}
        assert tenant_scim.get(f"Schemas/{USER}").json()["name"] == "User"
        error_of(tenant_scim.get("Schemas/urn:nope"), 404)
        error_of(tenant_scim.get("Nothing/here"), 404)


class TestAuthentication:
    def test_no_bad_revoked_or_foreign_token_is_401(self, tenant, tenant_scim):
        base = f"/scim/v2/accounts/{tenant.account.id}/Users"
        error_of(Client().get(base), 401)
        error_of(Client(HTTP_AUTHORIZATION="Bearer scim_nope").get(base), 401)
        other = make_tenant()
        token, raw = scim_token_create(account=other.account, actor=SYSTEM)
        error_of(Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(base), 401)
        assert (
            Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
            .get(f"/scim/v2/accounts/{other.account.id}/Users")
            .status_code
            == 200
        )
        scim_token_revoke(token=token, actor=SYSTEM)
        error_of(
            Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(f"/scim/v2/accounts/{other.account.id}/Users"), 401
        )
        # An API key is not a SCIM token.
        error_of(Client(HTTP_AUTHORIZATION=f"Bearer {tenant.member_key}").get(base), 401)

    def test_a_plan_without_scim_is_refused(self, tenant, tenant_scim):
        tenant.account.plan = "team"
        tenant.account.save(update_fields=["plan"])
        error_of(tenant_scim.get("Users"), 403)
        assert not ScimUser.objects.exists()


class TestUsers:
    def test_create_get_and_duplicate(self, tenant, tenant_scim):
        created = tenant_scim.post("Users", okta_user())
        assert created.status_code == 201
        body = created.json()
        assert created["Location"] == body["meta"]["location"] and body["meta"]["resourceType"] == "User"
        assert body["userName"] == "ada@corp.example" and body["active"] is True and "password" not in body
        assert body["externalId"] == "00u1" and body["name"]["givenName"] == "Ada"
        user = User.objects.get(email="ada@corp.example")
        assert not user.has_usable_password()
        membership = AccountMembership.objects.get(account=tenant.account, user=user)
        assert membership.role == AccountRole.MEMBER
        assert tenant_scim.get(f"Users/{body['id']}").json()["userName"] == "ada@corp.example"
        error_of(
            tenant_scim.post("Users", okta_user(email="ADA@corp.example", external_id="x")), 409, "uniqueness"
        )
        error_of(
            tenant_scim.post("Users", okta_user(email="bob@corp.example", external_id="00u1")),
            409,
            "uniqueness",
        )
        assert ScimUser.objects.count() == 1

    def test_bad_bodies_are_400_and_store_nothing(self, tenant_scim):
        for body in (
            {},
            {"userName": ""},
            {"userName": 7},
            {"userName": "x@corp.example", "emails": "x@corp.example"},
            {"userName": "a@b.example", "active": "maybe"},
        ):
            error_of(tenant_scim.post("Users", body), 400)
        bad_json = tenant_scim.http.post(f"{tenant_scim.base}/Users", "{nope", content_type=SCIM_JSON)
        error_of(bad_json, 400, "invalidSyntax")
        # PostgreSQL stores no NUL: refused up front, not a 500 from the database.
        nul = tenant_scim.http.post(
            f"{tenant_scim.base}/Users",
            '{"userName": "a@b.example", "name": {"givenName": "A\\u0000"}}',
            content_type=SCIM_JSON,
        )
        error_of(nul, 400, "invalidValue")
        assert not ScimUser.objects.exists() and not User.objects.filter(email="a@b.example").exists()

    def test_filters_and_paging(self, tenant_scim):
        ids = [
            create_user(tenant_scim, email=f"p{i}@corp.example", external_id=f"e{i}")["id"] for i in range(5)
        ]
        found = tenant_scim.get("Users", filter='userName eq "P3@CORP.example"').json()
        assert found["totalResults"] == 1 and found["Resources"][0]["id"] == ids[3]
        assert tenant_scim.get("Users", filter='externalId eq "e1"').json()["Resources"][0]["id"] == ids[1]
        by_email = tenant_scim.get("Users", filter='emails[type eq "work"].value eq "p2@corp.example"').json()
        assert [r["id"] for r in by_email["Resources"]] == [ids[2]]
        assert tenant_scim.get("Users", filter="active eq true").json()["totalResults"] == 5
        assert (
            tenant_scim.get("Users", filter='userName sw "p1" or userName sw "p4"').json()["totalResults"]
            == 2
        )
        none = tenant_scim.get("Users", filter='userName eq "nobody@corp.example"').json()
        assert none == {**none, "totalResults": 0, "Resources": [], "startIndex": 1, "itemsPerPage": 0}
        page = tenant_scim.get("Users", startIndex=2, count=2).json()
        assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
        assert [r["id"] for r in page["Resources"]] == ids[1:3]
        error_of(tenant_scim.get("Users", filter="userName eq"), 400, "invalidFilter")
        error_of(tenant_scim.get("Users", startIndex="one"), 400)

    def test_attributes_projection(self, tenant_scim):
        create_user(tenant_scim)
        listed = tenant_scim.get("Users", attributes="userName").json()["Resources"][0]
        assert set(listed) == {"id", "schemas", "userName"}
        trimmed = tenant_scim.get("Users", excludedAttributes="emails,groups").json()["Resources"][0]
        assert "emails" not in trimmed and "userName" in trimmed

    def test_put_replaces(self, tenant_scim):
        user = create_user(tenant_scim)
        replaced = tenant_scim.put(
            f"Users/{user['id']}",
            {
                "schemas": [USER],
                "userName": "ada@corp.example",
                "name": {"givenName": "Augusta", "familyName": "King"},
                "active": True,
                "externalId": "00u1",
            },
        )
        assert replaced.status_code == 200 and replaced.json()["name"]["givenName"] == "Augusta"
        assert User.objects.get(email="ada@corp.example").last_name == "King"


class TestDeprovisioning:
    def _user_with_keys(self, tenant, scim):
        body = create_user(scim)
        user = User.objects.get(email="ada@corp.example")
        WorkspaceRoleGrant.objects.unscoped().create(
            workspace=tenant.workspace, user=user, role=WorkspaceRole.DEVELOPER
        )
        _, key = api_key_create(owner=user, name="laptop", actor=SYSTEM)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert client.get(f"{tenant.prefix}/health").status_code == 200
        return body, user, client

    def test_okta_pathless_deactivation_ends_access_at_once(self, tenant, tenant_scim):
        body, user, client = self._user_with_keys(tenant, tenant_scim)
        response = tenant_scim.patch(f"Users/{body['id']}", {"op": "replace", "value": {"active": False}})
        assert response.status_code == 200 and response.json()["active"] is False
        assert client.get(f"{tenant.prefix}/health").status_code in (401, 404)
        user.refresh_from_db()
        assert not user.is_active
        assert not AccountMembership.objects.filter(account=tenant.account, user=user).exists()
        assert not ApiKey.objects.filter(user=user, revoked_at__isnull=True).exists()
        assert not WorkspaceRoleGrant.objects.unscoped().filter(user=user).exists()
        # Still there for the IdP, and in the audit trail.
        assert tenant_scim.get(f"Users/{body['id']}").json()["active"] is False
        assert AuditLogEntry.objects.filter(api_name="scim.user-deactivated", target_id=str(user.pk)).exists()

    def test_entra_string_booleans_and_reactivation_with_the_default_role(self, tenant, tenant_scim):
        body, user, _ = self._user_with_keys(tenant, tenant_scim)
        assert (
            tenant_scim.patch(
                f"Users/{body['id']}", {"op": "Replace", "path": "active", "value": "False"}
            ).status_code
            == 200
        )
        assert not AccountMembership.objects.filter(account=tenant.account, user=user).exists()
        back = tenant_scim.patch(f"Users/{body['id']}", {"op": "Replace", "path": "active", "value": "True"})
        assert back.status_code == 200 and back.json()["active"] is True
        user.refresh_from_db()
        assert user.is_active
        assert AccountMembership.objects.get(account=tenant.account, user=user).role == AccountRole.MEMBER

    def test_someone_in_another_account_keeps_it(self, tenant, tenant_scim):
        body = create_user(tenant_scim)
        user = User.objects.get(email="ada@corp.example")
        elsewhere = make_tenant()
        MembershipFactory(account=elsewhere.account, user=user, role=AccountRole.MEMBER)
        assert tenant_scim.delete(f"Users/{body['id']}").status_code == 204
        user.refresh_from_db()
        assert (
            user.is_active and AccountMembership.objects.filter(account=elsewhere.account, user=user).exists()
        )
        assert not AccountMembership.objects.filter(account=tenant.account, user=user).exists()
        error_of(tenant_scim.get(f"Users/{body['id']}"), 404)

    def test_the_last_owner_is_never_deprovisioned(self, tenant, tenant_scim):
        body = create_user(tenant_scim)
        user = User.objects.get(email="ada@corp.example")
        AccountMembership.objects.filter(account=tenant.account, user=user).update(role=AccountRole.OWNER)
        AccountMembership.objects.filter(account=tenant.account).exclude(user=user).update(
            role=AccountRole.MEMBER
        )
        error_of(
            tenant_scim.patch(f"Users/{body['id']}", {"op": "replace", "value": {"active": False}}),
            400,
            "mutability",
        )
        assert AccountMembership.objects.filter(
            account=tenant.account, user=user, role=AccountRole.OWNER
        ).exists()
        assert ScimUser.objects.get(pk=body["id"]).active is True

    def test_beyond_the_seat_limit_nothing_is_created(self, tenant, tenant_scim, monkeypatch):
        plan = plans.PLANS["enterprise"]
        used = AccountMembership.objects.filter(account=tenant.account).count()
        monkeypatch.setitem(plans.PLANS, "enterprise", dataclasses.replace(plan, max_seats=used + 1))
        create_user(tenant_scim, email="one@corp.example", external_id="1")
        body = error_of(tenant_scim.post("Users", okta_user(email="two@corp.example", external_id="2")), 403)
        assert "seat" in body["detail"].lower()
        assert not User.objects.filter(email="two@corp.example").exists()
        assert ScimUser.objects.count() == 1


class TestPatchForms:
    def test_entra_work_email_and_enterprise_extension(self, tenant_scim):
        body = create_user(tenant_scim)
        response = tenant_scim.patch(
            f"Users/{body['id']}",
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ada.l@corp.example"},
            {"op": "Add", "path": f"{ENTERPRISE}:employeeNumber", "value": "42"},
            {"op": "Replace", "path": "name.familyName", "value": "King"},
            {"op": "Add", "path": "title", "value": "Analyst"},
        )
        assert response.status_code == 200, response.content
        data = response.json()
        assert data[ENTERPRISE]["employeeNumber"] == "42" and ENTERPRISE in data["schemas"]
        assert any(e["value"] == "ada.l@corp.example" for e in data["emails"])
        assert data["name"]["familyName"] == "King" and data["title"] == "Analyst"

    def test_unknown_op_and_bad_path_are_400(self, tenant_scim):
        body = create_user(tenant_scim)
        error_of(tenant_scim.patch(f"Users/{body['id']}", {"op": "move", "path": "title", "value": "x"}), 400)
        error_of(tenant_scim.patch(f"Users/{body['id']}", {"op": "remove"}), 400)


class TestGroups:
    def test_okta_and_entra_membership_changes(self, tenant, tenant_scim):
        users = [
            create_user(tenant_scim, email=f"g{i}@corp.example", external_id=f"g{i}")["id"] for i in range(4)
        ]
        created = tenant_scim.post(
            "Groups", {"schemas": [GROUP], "displayName": "Data", "members": [{"value": users[0]}]}
        )
        assert created.status_code == 201, created.content
        group = created.json()
        team = Team.objects.get(pk=group["id"])
        assert team.scim_managed and team.account_id == tenant.account.id

        def members():
            return sorted(m["value"] for m in tenant_scim.get(f"Groups/{group['id']}").json()["members"])

        # Okta adds with path members and a list; removes with a value filter.
        assert (
            tenant_scim.patch(
                f"Groups/{group['id']}",
                {"op": "add", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]},
            ).status_code
            == 200
        )
        assert members() == sorted(users[:3])
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{users[1]}"]'}
        )
        assert members() == sorted([users[0], users[2]])
        # Entra removes with path members and a value list: only those go.
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "Add", "path": "members", "value": [{"value": users[3]}]}
        )
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "Remove", "path": "members", "value": [{"value": users[0]}]}
        )
        assert members() == sorted([users[2], users[3]])
        # Rename with a path-less replace (Okta).
        tenant_scim.patch(
            f"Groups/{group['id']}",
            {"op": "replace", "value": {"id": group["id"], "displayName": "Data Eng"}},
        )
        assert tenant_scim.get("Groups", filter='displayName eq "Data Eng"').json()["totalResults"] == 1
        error_of(
            tenant_scim.patch(
                f"Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": "nope"}]}
            ),
            400,
        )
        assert tenant_scim.delete(f"Groups/{group['id']}").status_code == 204
        assert not Team.objects.filter(pk=group["id"]).exists()

    def test_a_team_grant_follows_scim_membership(self, tenant, tenant_scim):
        user_id = create_user(tenant_scim)["id"]
        user = User.objects.get(email="ada@corp.example")
        group = tenant_scim.post("Groups", {"schemas": [GROUP], "displayName": "Ops"}).json()
        WorkspaceRoleGrant.objects.unscoped().create(
            workspace=tenant.workspace, team_id=group["id"], role=WorkspaceRole.VIEWER
        )
        _, key = api_key_create(owner=user, name="k", actor=SYSTEM)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert client.get(f"{tenant.prefix}/health").status_code == 404
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": user_id}]}
        )
        assert client.get(f"{tenant.prefix}/health").status_code == 200
        tenant_scim.patch(f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{user_id}"]'})
        assert client.get(f"{tenant.prefix}/health").status_code == 404


class TestIsolation:
    def test_another_accounts_resources_are_404(self, tenant, tenant_scim):
        user_id = create_user(tenant_scim)["id"]
        group_id = tenant_scim.post("Groups", {"displayName": "Mine"}).json()["id"]
        other = make_tenant()
        _, raw = scim_token_create(account=other.account, actor=SYSTEM)
        theirs = Scim(other.account, raw)
        for path in (f"Users/{user_id}", f"Groups/{group_id}"):
            error_of(theirs.get(path), 404)
            error_of(theirs.patch(path, {"op": "replace", "value": {"active": False}}), 404)
            error_of(theirs.delete(path), 404)
        assert theirs.get("Users").json()["totalResults"] == 0
        assert theirs.get("Users", filter='userName eq "ada@corp.example"').json()["totalResults"] == 0
        error_of(theirs.post("Groups", {"displayName": "X", "members": [{"value": user_id}]}), 400)
        assert ScimUser.objects.get(pk=user_id).active is True


class TestJournalAndAdmin:
    def test_every_request_is_journaled(self, tenant, tenant_scim):
        create_user(tenant_scim)
        tenant_scim.get("Users", filter='userName eq "x@y.example"')
        error_of(tenant_scim.post("Users", okta_user()), 409)
        rows = list(ScimActivity.objects.filter(account=tenant.account).order_by("id"))
        assert [(r.method, r.status) for r in rows] == [("POST", 201), ("GET", 200), ("POST", 409)]
        assert rows[0].changes[0]["change"] == "created" and rows[2].detail

    def test_admin_creates_lists_and_revokes_tokens(self, tenant):
        owner = UserFactory()
        MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
        _, key = api_key_create(owner=owner, name="admin", actor=SYSTEM)
        admin = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        url = f"/api/accounts/{tenant.account.id}/scim"
        created = admin.post(f"{url}/tokens", {"name": "okta"}, content_type="application/json")
        assert created.status_code == 201 and created.json()["token"].startswith("scim_")
        raw = created.json()["token"]
        config = admin.get(url).json()
        assert config["base_url"].endswith(f"/scim/v2/accounts/{tenant.account.id}")
        assert config["tokens"][0]["hint"] and "token" not in config["tokens"][0]
        assert Scim(tenant.account, raw).get("Users").status_code == 200
        assert admin.delete(f"{url}/tokens/{created.json()['id']}").status_code == 204
        assert Scim(tenant.account, raw).get("Users").status_code == 401
        assert admin.get(f"{url}/activity").json()[0]["status"] == 200
        member = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.member_key}")
        assert member.post(f"{url}/tokens", {"name": "x"}, content_type="application/json").status_code == 403
        assert admin.post(f"{url}/tokens", {}, content_type="application/json").status_code == 422
        assert AuditLogEntry.objects.filter(api_name="scim.token-created").exists()
        assert AuditLogEntry.objects.filter(api_name="scim.token-revoked").exists()


def test_a_user_name_that_is_not_an_address_takes_the_work_email_or_none(tenant_scim):
    with_email = tenant_scim.post(
        "Users", {"userName": "jdoe", "emails": [{"value": "jdoe@corp.example", "type": "work"}]}
    )
    assert with_email.status_code == 201 and with_email.json()["userName"] == "jdoe"
    assert User.objects.filter(email="jdoe@corp.example").exists()
    without = tenant_scim.post("Users", {"userName": "svc-7"})
    assert without.status_code == 201 and without.json().get("emails", []) == []
    user = ScimUser.objects.get(pk=without.json()["id"]).user
    assert user.email.endswith("@scim.invalid") and not user.has_usable_password()
    error_of(tenant_scim.post("Users", {"userName": "JDOE"}), 409, "uniqueness")


def test_search_with_post(tenant_scim):
    ids = [create_user(tenant_scim, email=f"s{i}@corp.example", external_id=f"s{i}")["id"] for i in range(3)]
    tenant_scim.post("Groups", {"displayName": "Searchers"})
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "s"',
        "attributes": ["userName"],
        "startIndex": 2,
        "count": 1,
    }
    found = tenant_scim.post("Users/.search", body)
    assert found.status_code == 200, found.content
    assert found.json()["totalResults"] == 3 and [r["id"] for r in found.json()["Resources"]] == [ids[1]]
    assert set(found.json()["Resources"][0]) == {"id", "schemas", "userName"}
    everything = tenant_scim.post(".search", {"schemas": body["schemas"]}).json()
    assert everything["totalResults"] == 4


def test_the_ip_allowlist_covers_scim_unless_the_account_exempts_it(tenant, tenant_scim):
    from accounts.models import IpAllowlistEntry
    from accounts.scim.services import scim_settings_update

    IpAllowlistEntry.objects.create(account=tenant.account, ip_network="10.9.0.0/16")
    tenant.account.settings = {**(tenant.account.settings or {}), "enforce_ip_allowlist": True}
    tenant.account.save(update_fields=["settings"])
    body = error_of(tenant_scim.get("Users"), 403)
    assert "127.0.0.1" in body["detail"]
    assert AuditLogEntry.objects.filter(api_name="request.access-denied.ip-allowlist").exists()
    assert not ScimUser.objects.exists()
    scim_settings_update(account=tenant.account, actor=SYSTEM, exempt_from_ip_allowlist=True)
    assert tenant_scim.get("Users").status_code == 200
    assert AuditLogEntry.objects.filter(api_name="scim.settings-changed").exists()


def test_idp_managed_teams_and_people_are_not_changed_by_hand(tenant, tenant_scim):
    owner = UserFactory()
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    _, key = api_key_create(owner=owner, name="admin", actor=SYSTEM)
    admin = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    user_id = create_user(tenant_scim)["id"]
    group = tenant_scim.post("Groups", {"displayName": "Platform", "members": [{"value": user_id}]}).json()
    api = f"/api/accounts/{tenant.account.id}"
    renamed = admin.put(f"{api}/teams/{group['id']}", {"name": "Mine now"}, content_type="application/json")
    assert renamed.status_code == 409 and "identity provider" in renamed.json()["detail"]
    assert admin.delete(f"{api}/teams/{group['id']}").status_code == 409
    user = User.objects.get(email="ada@corp.example")
    membership = AccountMembership.objects.get(account=tenant.account, user=user)
    assert admin.delete(f"{api}/account_memberships/{membership.id}").status_code == 409
    assert Team.objects.get(pk=group["id"]).name == "Platform"
    assert AccountMembership.objects.filter(pk=membership.pk).exists()


def test_the_journal_follows_the_audit_retention(tenant, tenant_scim):
    import datetime as dt

    from django.utils import timezone

    from accounts.tasks import purge_expired_scim_activity

    tenant_scim.get("Users")
    tenant_scim.get("Groups")
    retention = plans.PLANS[tenant.account.plan].audit_log_retention_days
    old = ScimActivity.objects.filter(account=tenant.account).order_by("id").first()
    ScimActivity.objects.filter(pk=old.pk).update(occurred=timezone.now() - dt.timedelta(days=retention + 1))
    purge_expired_scim_activity()
    assert list(ScimActivity.objects.filter(account=tenant.account).values_list("path", flat=True)) == [
        f"{tenant_scim.base}/Groups"
    ]


class TestIdpSequences:
    """The request sequences Okta and Microsoft Entra ID document, replayed in order."""

    def test_okta(self, tenant, tenant_scim):
        # Lookup, then create (Okta's POST carries a password and active: true).
        lookup = tenant_scim.get("Users", filter='userName eq "grace@corp.example"', startIndex=1, count=100)
        assert lookup.json()["totalResults"] == 0 and lookup.json()["Resources"] == []
        user = create_user(tenant_scim, email="grace@corp.example", external_id="00u9")
        grace = User.objects.get(email="grace@corp.example")
        assert AccountMembership.objects.filter(account=tenant.account, user=grace).exists()
        # Profile update: Okta sends a PUT of the whole user.
        put = tenant_scim.put(
            f"Users/{user['id']}",
            {
                **okta_user(email="grace@corp.example", external_id="00u9"),
                "name": {"givenName": "Grace", "familyName": "Hopper"},
            },
        )
        assert put.status_code == 200 and User.objects.get(pk=grace.pk).last_name == "Hopper"
        # Group push: create with no members, then add with path members and a list.
        group = tenant_scim.post("Groups", {"schemas": [GROUP], "displayName": "Navy", "members": []}).json()
        add = tenant_scim.patch(
            f"Groups/{group['id']}",
            {
                "op": "add",
                "path": "members",
                "value": [{"value": user["id"], "display": "grace@corp.example"}],
            },
        )
        assert add.status_code == 200
        assert Team.objects.get(pk=group["id"]).members.filter(user=grace).exists()
        # Rename: path-less replace with id and displayName.
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "replace", "value": {"id": group["id"], "displayName": "US Navy"}}
        )
        assert Team.objects.get(pk=group["id"]).name == "US Navy"
        # Membership removal with a value filter.
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}
        )
        assert not Team.objects.get(pk=group["id"]).members.exists()
        # Deactivate (path-less replace; Okta never DELETEs a user), then reactivate.
        tenant_scim.patch(f"Users/{user['id']}", {"op": "replace", "value": {"active": False}})
        assert not AccountMembership.objects.filter(account=tenant.account, user=grace).exists()
        tenant_scim.patch(f"Users/{user['id']}", {"op": "replace", "value": {"active": True}})
        assert AccountMembership.objects.filter(
            account=tenant.account, user=grace, role=AccountRole.MEMBER
        ).exists()
        # Unlink the pushed group: Okta deletes it.
        assert tenant_scim.delete(f"Groups/{group['id']}").status_code == 204
        assert not Team.objects.filter(pk=group["id"]).exists()

    def test_entra_default_dialect(self, tenant, tenant_scim):
        # Entra looks the user up by userName, then creates with the enterprise extension.
        assert tenant_scim.get("Users", filter='userName eq "alan@corp.example"').json()["totalResults"] == 0
        created = tenant_scim.post(
            "Users",
            {
                "schemas": [USER, ENTERPRISE],
                "externalId": "alan",
                "userName": "alan@corp.example",
                "active": True,
                "displayName": "Alan Turing",
                "emails": [{"primary": True, "type": "work", "value": "alan@corp.example"}],
                "name": {"formatted": "Alan Turing", "familyName": "Turing", "givenName": "Alan"},
                ENTERPRISE: {"department": "Maths", "employeeNumber": "7"},
            },
        )
        assert created.status_code == 201, created.content
        user = created.json()
        alan = User.objects.get(email="alan@corp.example")
        # Profile update: one Replace per attribute, capitalised, with string booleans.
        update = tenant_scim.patch(
            f"Users/{user['id']}",
            {"op": "Replace", "path": "displayName", "value": "A. M. Turing"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alan.turing@corp.example"},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Computing"},
            {"op": "Add", "path": "name.givenName", "value": "Alan Mathison"},
        )
        assert update.status_code == 200, update.content
        assert (
            update.json()["displayName"] == "A. M. Turing"
            and update.json()[ENTERPRISE]["department"] == "Computing"
        )
        assert User.objects.get(pk=alan.pk).first_name == "Alan Mathison"
        # Group push with members, then Add and Remove with path members and a list.
        other = create_user(tenant_scim, email="joan@corp.example", external_id="joan")
        group = tenant_scim.post(
            "Groups", {"schemas": [GROUP], "externalId": "g1", "displayName": "Bletchley", "members": []}
        ).json()
        tenant_scim.patch(
            f"Groups/{group['id']}",
            {"op": "Add", "path": "members", "value": [{"value": user["id"]}, {"value": other["id"]}]},
        )
        tenant_scim.patch(
            f"Groups/{group['id']}", {"op": "Remove", "path": "members", "value": [{"value": other["id"]}]}
        )
        members = tenant_scim.get(f"Groups/{group['id']}").json()["members"]
        assert [m["value"] for m in members] == [user["id"]]  # only that member went
        # Rename: Replace displayName with a path.
        tenant_scim.patch(f"Groups/{group['id']}", {"op": "Replace", "path": "displayName", "value": "Hut 8"})
        assert Team.objects.get(pk=group["id"]).name == "Hut 8"
        # Disable: Replace active "False"; then delete the user.
        tenant_scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
        assert not AccountMembership.objects.filter(account=tenant.account, user=alan).exists()
        assert tenant_scim.delete(f"Users/{user['id']}").status_code == 204
        error_of(tenant_scim.get(f"Users/{user['id']}"), 404)
        assert User.objects.filter(pk=alan.pk).exists()  # history kept


def test_deprovisioning_ends_the_console_session_on_the_next_request(tenant, tenant_scim):
    user_id = create_user(tenant_scim)["id"]
    user = User.objects.get(email="ada@corp.example")
    browser = Client()
    browser.force_login(user)
    assert browser.get("/").status_code == 200
    tenant_scim.patch(f"Users/{user_id}", {"op": "replace", "value": {"active": False}})
    assert browser.get("/").status_code == 302  # back to the login page


def test_unknown_paths_and_attributes(tenant_scim):
    user_id = create_user(tenant_scim)["id"]
    error_of(
        tenant_scim.patch(f"Users/{user_id}", {"op": "replace", "path": "shoeSize", "value": 9}),
        400,
        "noTarget",
    )
    error_of(tenant_scim.patch(f"Users/{user_id}", {"op": "remove", "path": "members"}), 400, "noTarget")
    stored = tenant_scim.post(
        "Users", {**okta_user(email="x@corp.example", external_id="x"), "favouriteColour": "teal"}
    )
    assert stored.status_code == 201 and stored.json()["favouriteColour"] == "teal"


def test_a_ten_thousand_member_group_patch(tenant, tenant_scim):
    people = User.objects.bulk_create([User(email=f"m{i}@bulk.example") for i in range(10_000)])
    scim_users = ScimUser.objects.bulk_create(
        [ScimUser(account=tenant.account, user=p, user_name=p.email) for p in people]
    )
    group = tenant_scim.post("Groups", {"displayName": "Everyone"}).json()
    response = tenant_scim.patch(
        f"Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": str(u.id)} for u in scim_users]},
    )
    assert response.status_code == 200
    assert len(response.json()["members"]) == 10_000
    assert Team.objects.get(pk=group["id"]).members.count() == 10_000


def test_the_account_api_marks_what_the_idp_manages(tenant, tenant_scim):
    owner = UserFactory()
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    _, key = api_key_create(owner=owner, name="admin", actor=SYSTEM)
    admin = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    user_id = create_user(tenant_scim)["id"]
    group = tenant_scim.post("Groups", {"displayName": "Provisioned", "externalId": "okta-1"}).json()
    api = f"/api/accounts/{tenant.account.id}"
    listed = admin.post(f"{api}/account_memberships/filter", {}, content_type="application/json").json()
    managed = {m["email"]: m["managed_by"] for m in listed}
    assert managed["ada@corp.example"] == "scim" and managed[owner.email] is None
    membership = next(m for m in listed if m["email"] == "ada@corp.example")
    assert admin.get(f"{api}/account_memberships/{membership['id']}").json()["managed_by"] == "scim"
    team = admin.get(f"{api}/teams/{group['id']}").json()
    assert team["managed_by"] == "scim" and team["external_id"] == "okta-1"
    assert ScimUser.objects.filter(pk=user_id).exists()


def test_reactivation_needs_a_free_seat_and_changes_nothing_without_one(tenant, tenant_scim, monkeypatch):
    user_id = create_user(tenant_scim)["id"]
    tenant_scim.patch(f"Users/{user_id}", {"op": "replace", "value": {"active": False}})
    used = AccountMembership.objects.filter(account=tenant.account).count()
    plan = plans.PLANS["enterprise"]
    monkeypatch.setitem(plans.PLANS, "enterprise", dataclasses.replace(plan, max_seats=used))
    body = error_of(tenant_scim.patch(f"Users/{user_id}", {"op": "replace", "value": {"active": True}}), 403)
    assert "Nothing was provisioned" in body["detail"]
    user = User.objects.get(email="ada@corp.example")
    assert not user.is_active and ScimUser.objects.get(pk=user_id).active is False
    assert not AccountMembership.objects.filter(account=tenant.account, user=user).exists()


def test_odd_requests_get_scim_errors_never_a_500(tenant_scim):
    user_id = create_user(tenant_scim)["id"]
    group_id = tenant_scim.post("Groups", {"displayName": "Odd"}).json()["id"]
    odd = [
        tenant_scim.get("Users", count="-5", startIndex="0"),
        tenant_scim.get("Users", filter='meta.resourceType eq "User"'),
        tenant_scim.get("Users", filter='name.givenName co "A" and not (active eq false)'),
        tenant_scim.get("Users", filter="active eq maybe"),
        tenant_scim.get("Users", filter='meta.lastModified gt "yesterday"'),
        tenant_scim.get("Users", filter="userName gt 5"),
        tenant_scim.get("Groups", filter=f'members[value eq "{user_id}"]'),
        tenant_scim.get("Users", filter="(" * 50),
        tenant_scim.post("Users", ["not", "an", "object"]),
        tenant_scim.post("Users", {"userName": "n@corp.example", "name": {"givenName": 5}}),
        tenant_scim.post("Users", {"userName": "n@corp.example", "emails": [{"value": 5}]}),
        tenant_scim.post("Groups", {"displayName": "G", "members": [{"value": 7}]}),
        tenant_scim.post("Groups", {"displayName": 7}),
        tenant_scim.put(f"Users/{user_id}", "nope"),
        tenant_scim.patch(
            f"Users/{user_id}", {"op": "replace", "path": 'emails[type eq "work"', "value": "x"}
        ),
        tenant_scim.patch(
            f"Users/{user_id}", {"op": "replace", "path": "name.givenName.extra", "value": "x"}
        ),
        tenant_scim.patch(
            f"Users/{user_id}", {"op": "add", "path": 'emails[type eq "home"].value', "value": "h@x.example"}
        ),
        tenant_scim.patch(
            f"Users/{user_id}", {"op": "replace", "path": 'emails[display co "x"]', "value": {}}
        ),
        tenant_scim.patch(f"Groups/{group_id}", {"op": "replace", "path": "members", "value": "everyone"}),
        tenant_scim.http.patch(
            f"{tenant_scim.base}/Users/{user_id}", {"Operations": "x"}, content_type=SCIM_JSON
        ),
        tenant_scim.get("Users/not-a-uuid"),
        tenant_scim.delete("Groups/not-a-uuid"),
    ]
    for response in odd:
        assert response.status_code < 500, (response.status_code, response.content)
        assert response["Content-Type"].startswith(SCIM_JSON)
        if response.status_code >= 400:
            assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_listing_costs_the_same_queries_for_one_person_or_many(tenant_scim):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost(path):
        with CaptureQueriesContext(connection) as ctx:
            assert tenant_scim.get(path).status_code == 200
        return len(ctx.captured_queries)

    first = create_user(tenant_scim, email="q0@corp.example", external_id="q0")["id"]
    tenant_scim.post("Groups", {"displayName": "Q", "members": [{"value": first}]})
    users_one, groups_one = cost("Users"), cost("Groups")
    ids = [
        create_user(tenant_scim, email=f"q{i}@corp.example", external_id=f"q{i}")["id"] for i in range(1, 8)
    ]
    for i in range(4):
        tenant_scim.post("Groups", {"displayName": f"Q{i}", "members": [{"value": v} for v in ids]})
    assert cost("Users") == users_one and cost("Groups") == groups_one
    listed = tenant_scim.get("Users", filter='userName eq "q1@corp.example"').json()["Resources"][0]
    assert sorted(g["display"] for g in listed["groups"]) == ["Q0", "Q1", "Q2", "Q3"]
