from __future__ import annotations

import pytest

from accounts.permissions import AccountRole
from accounts.services import user_create
from tests.factories import AccountFactory, MembershipFactory, UserFactory


@pytest.mark.django_db
class TestSessionLogin:
    def test_sign_in_by_email_and_see_workspaces(self, client, tenant):
        tenant.member.set_password("a long enough password")
        tenant.member.save()
        response = client.post(
            "/login/", {"username": tenant.member.email.upper(), "password": "a long enough password"}
        )
        assert response.status_code == 302 and response["Location"] == "/"
        page = client.get("/").content.decode()
        assert tenant.member.email in page
        assert f"/api/accounts/{tenant.account.id}/workspaces/{tenant.workspace.id}" in page
        assert f"{tenant.account.handle}/{tenant.workspace.handle}" in page

    def test_other_tenants_workspaces_are_not_listed(self, client, two_workspaces):
        a, b = two_workspaces
        client.force_login(a.member)
        page = client.get("/").content.decode()
        assert str(a.workspace.id) in page and str(b.workspace.id) not in page

    def test_wrong_password_is_a_form_error(self, client, db):
        user_create(email="x@example.test", password="a long enough password")
        response = client.post("/login/", {"username": "x@example.test", "password": "nope"})
        assert response.status_code == 200
        assert "Please enter a correct" in response.content.decode()

    def test_anonymous_is_sent_to_login(self, client, db):
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")

    def test_sign_out(self, client, tenant):
        client.force_login(tenant.member)
        client.post("/logout/")
        assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_an_owner_refused_by_the_admin_is_told_who_it_is_for_and_where_to_go(client):
    owner = UserFactory(email="owner@acme.example")
    owner.set_password("a long enough password")
    owner.save()
    MembershipFactory(account=AccountFactory(), user=owner, role=AccountRole.OWNER)
    response = client.post(
        "/admin/login/", {"username": "owner@acme.example", "password": "a long enough password"}
    )
    page = response.content.decode()
    assert "_auth_user_id" not in client.session
    assert "createsuperuser" in page and "/console/" in page
