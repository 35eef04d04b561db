"""The console's "test sign-in" of an identity provider, against the real SAML IdP (pysaml2) and
OIDC provider (npm ``oidc-provider``): the flow runs as a sign-in would, the answer is validated as
one, and the provider's page shows what came back and what a sign-in would make of it; nobody is
signed in, no user, link or SSO session is created, no mapping applied; ``sso.test-sign-in`` is
audited, and a response that was not the test this session started signs nobody in either."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from social_django.models import UserSocialAuth

from accounts.models import AccountMembership, SsoSession, TeamMember, User, WorkspaceRoleGrant
from accounts.permissions import AccountRole
from accounts.rbac import team_create
from accounts.sso.mappings import group_mappings_set
from accounts.sso.saml import sp_urls
from audit.actors import SYSTEM
from tests.accounts.sso.conftest import SP_HOST, audit_events, location_path, oidc_idp
from tests.accounts.sso.test_saml_login import ALICE, ATTRIBUTES, saml_idp_row, tamper_attribute
from tests.factories import MembershipFactory, UserFactory
from tests.peers.saml_idp import SamlIdp

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(acme):
    person = UserFactory(email="admin@acme.example")
    MembershipFactory(account=acme.account, user=person, role=AccountRole.ADMIN)
    return person


@pytest.fixture
def console(sso_settings, admin) -> Client:
    browser = Client(HTTP_HOST=SP_HOST, enforce_csrf_checks=False)
    browser.force_login(admin)
    return browser


def provider_page(acme, idp) -> str:
    return f"/console/accounts/{acme.account.handle}/sso/providers/{idp.pk}/"


def start_test(console, acme, idp) -> str:
    response = console.post(provider_page(acme, idp) + "test")
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def nothing_signed_in(console, admin, *emails):
    assert not User.objects.filter(email__in=emails).exists()
    assert not UserSocialAuth.objects.exists()
    assert not SsoSession.objects.exists()
    assert console.session["_auth_user_id"] == str(admin.pk)  # still the administrator's session
    assert "sso" not in console.session


class TestOidc:
    def test_shows_the_claims_and_the_mapping_result_and_signs_nobody_in(self, console, acme, admin, oidc):
        idp = oidc_idp(acme.account, oidc)
        team = team_create(account=acme.account, name="Engineers", actor=SYSTEM)
        group_mappings_set(
            account=acme.account,
            mappings=[{"group": "engineers", "team_id": str(team.pk)}],
            actor=SYSTEM,
        )
        authorize = start_test(console, acme, idp)
        callback = oidc.login_via_http(authorize, "alice", "any password")
        response = console.get(location_path({"Location": callback}))
        assert response.status_code == 302
        assert response["Location"] == provider_page(acme, idp) + "#test-heading"

        nothing_signed_in(console, admin, "alice@acme.example")
        assert not TeamMember.objects.filter(team=team).exists()
        page = console.get(provider_page(acme, idp)).content.decode()
        assert "The sign-in would be accepted." in page
        assert "alice@acme.example, a new person made just in time, would join Acme Corp" in page
        assert "Claims received" in page and "<code>sub</code>" in page and "alice-0001" in page
        assert "<code>groups</code></td><td>engineers, admins" in page
        assert "team Engineers" in page
        assert "access_token" not in page and "id_token" not in page
        (event,) = audit_events(acme.account, "sso.test-sign-in")
        assert event.actor_user_id == admin.pk and event.target_id == str(idp.pk)
        assert event.payload["outcome"] == "accepted" and event.payload["email"] == "alice@acme.example"
        assert audit_events(acme.account, "sso.login-succeeded") == []
        assert audit_events(acme.account, "sso.user-provisioned") == []

    def test_an_address_outside_the_verified_domains_is_reported_refused(self, console, acme, admin, oidc):
        idp = oidc_idp(acme.account, oidc)
        authorize = start_test(console, acme, idp)
        callback = oidc.login_via_http(authorize, "mallory", "any password")
        console.get(location_path({"Location": callback}))
        page = console.get(provider_page(acme, idp)).content.decode()
        assert (
            "The sign-in would be refused." in page and "elsewhere.example is not a verified domain" in page
        )
        nothing_signed_in(console, admin, "mallory@elsewhere.example")
        (event,) = audit_events(acme.account, "sso.test-sign-in")
        assert event.payload["outcome"] == "refused: unverified_domain"

    def test_an_existing_member_is_named_with_their_role(self, console, acme, admin, oidc):
        bob = UserFactory(email="bob@acme.example")
        MembershipFactory(account=acme.account, user=bob, role=AccountRole.ADMIN)
        idp = oidc_idp(acme.account, oidc)
        callback = oidc.login_via_http(start_test(console, acme, idp), "bob", "any password")
        console.get(location_path({"Location": callback}))
        page = console.get(provider_page(acme, idp)).content.decode()
        assert "bob@acme.example, a member (Admin), linked by the verified address." in page
        assert "No groups were sent" in page
        assert not UserSocialAuth.objects.exists()

    def test_a_disabled_provider_is_tested_and_said_to_be_off(self, console, acme, admin, oidc):
        idp = oidc_idp(acme.account, oidc, enabled=False)
        callback = oidc.login_via_http(start_test(console, acme, idp), "alice", "any password")
        console.get(location_path({"Location": callback}))
        page = console.get(provider_page(acme, idp)).content.decode()
        assert "The sign-in would be accepted." in page and "turned off" in page
        nothing_signed_in(console, admin, "alice@acme.example")

    def test_a_callback_with_another_state_is_not_the_test(self, console, acme, admin, oidc, web):
        """Another browser completing a flow it did not start: a normal sign-in's refusal, not a
        report in someone's session."""
        idp = oidc_idp(acme.account, oidc)
        authorize = start_test(console, acme, idp)
        callback = oidc.login_via_http(authorize, "alice", "any password")
        response = web.get(location_path({"Location": callback}))  # a different session
        assert response.status_code in (400, 403)
        assert not User.objects.filter(email="alice@acme.example").exists()
        assert audit_events(acme.account, "sso.test-sign-in") == []

    def test_the_form_is_a_plain_navigation_not_an_htmx_request(self, console, acme, oidc):
        """The flow leaves for the IdP's origin: a boosted (XHR) form could not follow there."""
        idp = oidc_idp(acme.account, oidc)
        page = console.get(provider_page(acme, idp)).content.decode()
        assert f'action="{provider_page(acme, idp)}test" hx-boost="false"' in page

    def test_a_viewer_sees_no_provider_page_and_a_forged_test_is_403(self, sso_settings, acme, oidc):
        idp = oidc_idp(acme.account, oidc)
        browser = Client(HTTP_HOST=SP_HOST)
        browser.force_login(acme.member)
        assert browser.get(provider_page(acme, idp)).status_code == 403
        assert browser.post(provider_page(acme, idp) + "test").status_code == 403
        assert oidc.request_log == [] or not any(r.path.endswith("/auth") for r in oidc.request_log)

    def test_the_form_needs_its_csrf_token(self, sso_settings, acme, admin, oidc):
        idp = oidc_idp(acme.account, oidc)
        browser = Client(HTTP_HOST=SP_HOST, enforce_csrf_checks=True)
        browser.force_login(admin)
        assert browser.post(provider_page(acme, idp) + "test").status_code == 403
        assert "sso_test_sign_in" not in browser.session

    def test_another_accounts_provider_is_404(self, console, acme, oidc):
        from tests.conftest import make_tenant

        other = make_tenant(name="Other")
        theirs = oidc_idp(other.account, oidc, name="Theirs")
        assert (
            console.post(
                f"/console/accounts/{acme.account.handle}/sso/providers/{theirs.pk}/test"
            ).status_code
            == 404
        )


class TestSaml:
    @pytest.fixture
    def saml(self):
        return SamlIdp()

    def _answer(self, console, acme, row, saml, *, attributes=None, tamper=None):
        request = saml.parse_authn_request(start_test(console, acme, row))
        urls = sp_urls(row)
        response = saml.login_response(
            urls["entity_id"],
            urls["acs_url"],
            in_response_to=request.id,
            name_id=ALICE,
            attributes=ATTRIBUTES if attributes is None else attributes,
        )
        if tamper is not None:
            response = tamper(response)
        acs = urlsplit(urls["acs_url"]).path
        data = {"SAMLResponse": response, "RelayState": request.relay_state}
        first = console.post(acs, data)
        assert first.status_code == 200 and b"psa_saml_browser_return" in first.content
        return console.post(acs, {**data, "psa_saml_browser_return": "1"})

    def test_shows_the_attributes_and_signs_nobody_in(self, console, acme, admin, saml):
        row = saml_idp_row(acme.account, saml)
        response = self._answer(console, acme, row, saml)
        assert response.status_code == 302
        assert response["Location"] == provider_page(acme, row) + "#test-heading"
        nothing_signed_in(console, admin, ALICE)
        page = console.get(provider_page(acme, row)).content.decode()
        assert "The sign-in would be accepted." in page and "Attributes received" in page
        assert (
            "<code>firstName</code></td><td>Alice" in page and "<code>groups</code></td><td>engineers" in page
        )
        assert 'Group mappings would give: <span class="muted">nothing' in page
        (event,) = audit_events(acme.account, "sso.test-sign-in")
        assert event.payload["kind"] == "saml" and event.payload["groups"] == ["engineers"]

    def test_a_tampered_response_is_reported_refused(self, console, acme, admin, saml):
        row = saml_idp_row(acme.account, saml)
        response = self._answer(
            console, acme, row, saml, tamper=lambda b64: tamper_attribute(b64, "email", "ceo@acme.example")
        )
        assert response.status_code == 302
        page = console.get(provider_page(acme, row)).content.decode()
        assert "The sign-in would be refused." in page and "ceo@acme.example" not in page
        nothing_signed_in(console, admin, ALICE, "ceo@acme.example")
        (event,) = audit_events(acme.account, "sso.test-sign-in")
        assert event.payload["outcome"].startswith("refused")

    def test_a_test_answer_without_the_session_signs_nobody_in(self, console, acme, admin, saml, web):
        row = saml_idp_row(acme.account, saml)
        request = saml.parse_authn_request(start_test(console, acme, row))
        urls = sp_urls(row)
        response = saml.login_response(
            urls["entity_id"],
            urls["acs_url"],
            in_response_to=request.id,
            name_id=ALICE,
            attributes=ATTRIBUTES,
        )
        acs = urlsplit(urls["acs_url"]).path
        data = {"SAMLResponse": response, "RelayState": request.relay_state, "psa_saml_browser_return": "1"}
        answer = web.post(acs, data)  # another browser, with the test's RelayState
        assert answer.status_code in (400, 403)
        assert not User.objects.filter(email=ALICE).exists() and not UserSocialAuth.objects.exists()
        assert not AccountMembership.objects.filter(account=acme.account, user__email=ALICE).exists()
        assert not WorkspaceRoleGrant.objects.unscoped().filter(user__email=ALICE).exists()
