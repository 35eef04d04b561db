"""SSO enforcement: password sign-in refused to members, the Owners' audited break-glass path, key
creation from a password session, web sessions in the API and the console, session lifetime,
the email-first sign-in page, and the settings that turn it on."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.permissions import AccountRole
from accounts.rbac import account_settings_update
from accounts.sso.providers import provider_delete, provider_update
from audit.actors import SYSTEM
from tests.accounts.sso.conftest import PASSWORD, audit_events, oidc_idp, oidc_sign_in
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _person(account, email: str, role=AccountRole.MEMBER) -> User:
    user = UserFactory(email=email)
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory(account=account, user=user, role=role)
    return user


def _enforce(account, on: bool = True):
    return account_settings_update(account=account, changes={"enforce_sso": on}, actor=SYSTEM)


@pytest.fixture
def enforced(acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    _enforce(acme.account)
    acme.account.refresh_from_db()
    return acme, idp


def _password_login(web, email: str):
    return web.post("/login/", {"username": email, "password": PASSWORD})


def test_a_members_password_sign_in_is_refused_once_sso_is_enforced(web, acme, oidc):
    carol = _person(acme.account, "carol@acme.example")
    oidc_idp(acme.account, oidc)
    assert _password_login(web, carol.email).status_code == 302
    web.post("/logout/")

    _enforce(acme.account)
    response = _password_login(web, carol.email)
    assert response.status_code == 200
    assert "requires single sign-on" in response.content.decode()
    assert "_auth_user_id" not in web.session
    refused = audit_events(acme.account, "login.failed")[-1]
    assert refused.payload["reason"] == "sso_required" and refused.target_id == str(carol.id)


def test_an_owner_breaks_glass_with_a_password_audited_and_the_other_owners_told(
    web, enforced, django_capture_on_commit_callbacks
):
    acme, _ = enforced
    owner = _person(acme.account, "owner@acme.example", AccountRole.OWNER)
    other = _person(acme.account, "second-owner@acme.example", AccountRole.OWNER)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = _password_login(web, owner.email)
    assert response.status_code == 302
    (event,) = audit_events(acme.account, "sso.break-glass-login")
    assert event.actor_user_id == owner.id and event.payload["notified"] == [other.email]
    (message,) = mail.outbox
    assert message.to == [other.email] and owner.email in message.body
    # The break-glass session may act in the account.
    page = web.get("/").content.decode()
    assert str(acme.workspace.id) in page


def test_a_person_with_another_open_account_signs_in_but_not_into_the_enforcing_one(web, enforced):
    from tests.conftest import make_tenant

    acme, _ = enforced
    other = make_tenant(name="Open Inc")
    dave = _person(acme.account, "dave@acme.example")
    MembershipFactory(account=other.account, user=dave, role=AccountRole.MEMBER)
    from tests.factories import GrantFactory

    GrantFactory(workspace=acme.workspace, user=dave, role="developer")
    GrantFactory(workspace=other.workspace, user=dave, role="developer")

    assert _password_login(web, dave.email).status_code == 302
    page = web.get("/").content.decode()
    assert str(other.workspace.id) in page and str(acme.workspace.id) not in page
    assert "Acme Corp</strong> requires single sign-on" in page

    # The session is refused by the enforcing account's API, not by the other's.
    api = APIClient()
    api.cookies = web.cookies
    assert api.post(f"{acme.prefix}/flows/filter", {}, format="json").status_code == 403
    assert api.post(f"{other.prefix}/flows/filter", {}, format="json").status_code == 200
    # So is Prefect's UI of the enforcing account's workspace, and not the other's.
    acme_ui = web.get(f"/account/{acme.account.id}/workspace/{acme.workspace.id}/runs")
    assert acme_ui.status_code == 403 and "single sign-on" in acme_ui.json()["detail"]
    assert web.get(f"/account/{other.account.id}/workspace/{other.workspace.id}/runs").status_code == 200
    # And a new key from this session would reach the enforcing account: refused.
    made = api.post(f"/api/users/{dave.id}/api_keys", {"name": "laptop"}, format="json")
    assert made.status_code == 403 and "single sign-on" in made.json()["detail"]


def test_an_sso_session_acts_in_its_account_and_makes_keys(web, enforced, oidc):
    acme, idp = enforced
    assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
    alice = User.objects.get(email="alice@acme.example")
    from tests.factories import GrantFactory

    GrantFactory(workspace=acme.workspace, user=alice, role="developer")
    api = APIClient()
    api.cookies = web.cookies
    assert api.post(f"{acme.prefix}/flows/filter", {}, format="json").status_code == 200
    made = api.post(f"/api/users/{alice.id}/api_keys", {"name": "laptop"}, format="json")
    assert made.status_code == 201 and made.json()["key"].startswith("pnu_")


def test_an_sso_session_expires_after_the_accounts_auth_expiration(web, enforced, oidc):
    acme, idp = enforced
    account_settings_update(account=acme.account, changes={"auth_expiration_seconds": 900}, actor=SYSTEM)
    before = timezone.now()
    oidc_sign_in(web, idp, oidc, "alice")
    session_key = web.session.session_key
    ends = Session.objects.get(session_key=session_key).expire_date
    assert before + timedelta(seconds=900) <= ends <= timezone.now() + timedelta(seconds=900)
    # An absolute end: later writes to the session (here, starting another sign-in) do not push it.
    time.sleep(1.1)
    assert web.post(f"/sso/login/{idp.id}/", {"next": "/"}).status_code == 302
    assert Session.objects.get(session_key=session_key).expire_date == ends


def test_a_session_from_another_accounts_idp_does_not_count(web, enforced, oidc):
    from tests.accounts.sso.conftest import verified_domain
    from tests.conftest import make_tenant

    acme, _ = enforced
    other = make_tenant(name="Other Co")
    verified_domain(other.account, "acme-subsidiary.example")
    other_idp = oidc_idp(other.account, oidc, name="Other IdP")
    oidc.add_account("zed", {"sub": "zed-1", "email": "zed@acme-subsidiary.example", "email_verified": True})
    assert oidc_sign_in(web, other_idp, oidc, "zed").status_code == 302
    zed = User.objects.get(email="zed@acme-subsidiary.example")
    MembershipFactory(account=acme.account, user=zed, role=AccountRole.MEMBER)
    from tests.factories import GrantFactory

    GrantFactory(workspace=acme.workspace, user=zed, role="developer")
    GrantFactory(workspace=other.workspace, user=zed, role="developer")
    api = APIClient()
    api.cookies = web.cookies
    assert api.post(f"{acme.prefix}/flows/filter", {}, format="json").status_code == 403
    assert api.post(f"{other.prefix}/flows/filter", {}, format="json").status_code == 200


def test_enforcement_needs_an_enabled_provider_and_a_verified_domain(acme, oidc):
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="identity provider"):
        _enforce(acme.account)
    idp = oidc_idp(acme.account, oidc)
    from accounts.models import SsoDomain

    SsoDomain.objects.filter(account=acme.account).update(verified_at=None)
    with pytest.raises(InvalidInput, match="Verify a domain"):
        _enforce(acme.account)
    SsoDomain.objects.filter(account=acme.account).update(verified_at="2026-01-01T00:00:00Z")
    settings_after = _enforce(acme.account)
    assert settings_after["enforce_sso"] is True
    (toggled,) = audit_events(acme.account, "sso.enforcement-changed")
    assert toggled.payload["enforce_sso"] is True

    # The last enabled provider stays while enforcement is on.
    from core.errors import Conflict

    acme.account.refresh_from_db()
    with pytest.raises(Conflict):
        provider_update(provider=idp, body={"enabled": False}, actor=SYSTEM)
    with pytest.raises(Conflict):
        provider_delete(provider=idp, actor=SYSTEM)
    _enforce(acme.account, False)
    assert audit_events(acme.account, "sso.enforcement-changed")[-1].payload["enforce_sso"] is False


def test_the_settings_api_shows_and_validates_sso_settings(acme):
    owner = _person(acme.account, "root@acme.example", AccountRole.OWNER)
    api = APIClient()
    api.force_authenticate(owner)
    url = f"/api/accounts/{acme.account.id}/settings"
    body = api.get(url).json()
    assert body["enforce_sso"] is False and body["auth_expiration_seconds"] == 43200
    for bad in ({"enforce_sso": "yes"}, {"auth_expiration_seconds": 5}, {"auth_expiration_seconds": "1h"}):
        response = api.patch(url, bad, format="json")
        assert 400 <= response.status_code < 500 and "detail" in response.json(), bad
    refused = api.patch(url, {"enforce_sso": True}, format="json")
    assert refused.status_code in (400, 422) and "identity provider" in refused.json()["detail"]
    assert (
        api.patch(url, {"auth_expiration_seconds": 3600}, format="json").json()["auth_expiration_seconds"]
        == 3600
    )

    acme.account.plan = "team"
    acme.account.save()
    assert "enforce_sso" not in api.get(url).json()


class TestEmailFirstSignIn:
    def test_an_address_of_a_verified_domain_is_offered_its_identity_provider(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc)
        page = web.post("/login/", {"username": "someone@ACME.example"}).content.decode()
        assert f'action="/sso/login/{idp.id}/"' in page and "Continue with Acme OIDC" in page
        assert 'name="password"' in page and "break glass" not in page

    def test_with_enforcement_the_password_is_only_the_break_glass_path(self, web, enforced):
        page = web.post("/login/", {"username": "someone@acme.example"}).content.decode()
        assert "Continue with Acme OIDC" in page and "break glass" in page

    def test_other_addresses_get_the_password_step(self, web, acme, oidc):
        oidc_idp(acme.account, oidc)
        page = web.post("/login/", {"username": "x@unrelated.example"}).content.decode()
        assert "/sso/login/" not in page and 'name="password"' in page

    def test_an_unverified_domain_routes_nowhere(self, web, db, oidc):
        from accounts.models import SsoDomain
        from tests.conftest import make_tenant

        tenant = make_tenant(name="Claimer")
        SsoDomain.objects.create(account=tenant.account, domain="claimed.example", token="t")
        oidc_idp(tenant.account, oidc)
        page = web.post("/login/", {"username": "a@claimed.example"}).content.decode()
        assert "/sso/login/" not in page
