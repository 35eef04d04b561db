"""Odd inputs and attacks on single sign-on, each ending in a plain refusal page (4xx, an
``sso.login-failed`` event, nothing created) or a same-origin redirect: open-redirect variants,
cross-account IdP copies, comment truncation, message shapes, id_token forgeries, callback replay
and login CSRF, over-long identities, odd relay states, single logout edge cases, and the admin's
password sign-in under enforcement."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from urllib.parse import quote, urlsplit

import pytest
from django.test import Client
from lxml import etree

from accounts.models import SsoSession, User
from accounts.permissions import AccountRole
from accounts.sso.saml import sp_urls
from tests.accounts.sso.conftest import (
    SP_HOST,
    audit_events,
    location_path,
    oidc_idp,
    oidc_sign_in,
    verified_domain,
)
from tests.accounts.sso.test_saml_login import (
    ATTRIBUTES,
    post_to_acs,
    saml_idp_row,
    sign_in,
    start,
)
from tests.conftest import make_tenant
from tests.peers.saml_idp import NS, SamlIdp, decode, encode, inject_comment

pytestmark = pytest.mark.django_db

ALICE = "alice@acme.example"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


@pytest.fixture
def web(sso_settings):
    # A 500 is observed as a status code, not raised into the test.
    return Client(HTTP_HOST=SP_HOST, raise_request_exception=False)


@pytest.fixture
def idp():
    return SamlIdp()


@pytest.fixture
def row(acme, idp, sso_settings):
    return saml_idp_row(acme.account, idp)


def assert_refused(response, account, reason: str | None = None):
    assert response.status_code in (400, 403), (response.status_code, response.content[:400])
    assert b'id="sso-error"' in response.content
    failures = audit_events(account, "sso.login-failed")
    assert failures, "no sso.login-failed event"
    if reason is not None:
        assert failures[-1].payload["reason"] == reason, failures[-1].payload
    return failures[-1]


def assert_same_origin_redirect(response):
    assert response.status_code == 302, (response.status_code, response.content[:300])
    location = response["Location"]
    parts = urlsplit(location)
    # What a browser would do with it: no scheme and no authority, a path starting with one "/".
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith("//"), location
    assert "\\" not in location and not location.startswith("/\t"), location


def unsolicited(row, idp, **kwargs):
    urls = sp_urls(row)
    kwargs.setdefault("attributes", ATTRIBUTES)
    return idp.login_response(urls["entity_id"], urls["acs_url"], **kwargs)


# --- SAML: size and shape of the identity -------------------------------------------------------


class TestSamlOddIdentities:
    def test_a_long_persistent_name_id_is_refused(self, web, acme, row, idp):
        # A valid, signed assertion whose (opaque) NameID is 300 characters: social-auth's uid
        # "<idp id>:<NameID>" would not fit UserSocialAuth.uid (varchar 255).
        long_id = "x" * 300
        response = sign_in(web, row, idp, name_id=long_id, name_id_format=PERSISTENT)
        assert_refused(response, acme.account)
        assert not User.objects.filter(email=ALICE).exists()

    def test_a_long_email_is_refused(self, web, acme, row, idp):
        # An address in the verified domain longer than User.email (254).
        email = "a" * 250 + "@acme.example"
        attributes = {**ATTRIBUTES, "email": [email]}
        response = sign_in(
            web, row, idp, name_id="opaque-long", attributes=attributes, name_id_format=PERSISTENT
        )
        assert_refused(response, acme.account)

    def test_an_address_with_two_at_signs_is_refused(self, web, acme, row, idp):
        # Two "@": what follows the last one is a verified domain, but this is no address.
        weird = "mallory@evil.example@acme.example"
        attributes = {**ATTRIBUTES, "email": [weird]}
        response = sign_in(
            web, row, idp, name_id="opaque-weird", attributes=attributes, name_id_format=PERSISTENT
        )
        assert_refused(response, acme.account)
        assert not User.objects.filter(email__icontains="mallory").exists()
        assert not User.objects.filter(email__iexact=weird).exists()

    def test_upper_case_domain_links_the_same_person(self, web, acme, row, idp):
        assert sign_in(web, row, idp).status_code == 302
        web.post("/logout/")
        upper = {**ATTRIBUTES, "email": ["ALICE@ACME.EXAMPLE"]}
        response = sign_in(web, row, idp, name_id="opaque-upper", attributes=upper, name_id_format=PERSISTENT)
        assert response.status_code == 302
        assert User.objects.filter(email__iexact=ALICE).count() == 1

    @pytest.mark.parametrize(
        "email", ["alice@acme.example.", "alice@acme.exämple", "alice@xn--acme-.example", "alice@"]
    )
    def test_odd_domains_are_refused(self, web, acme, row, idp, email):
        attributes = {**ATTRIBUTES, "email": [email]}
        response = sign_in(web, row, idp, name_id="opaque", attributes=attributes, name_id_format=PERSISTENT)
        assert_refused(response, acme.account)
        assert not User.objects.filter(email__istartswith="alice@").exists()

    def test_name_id_not_email_with_email_of_another_domain(self, web, acme, row, idp):
        attributes = {**ATTRIBUTES, "email": ["mallory@elsewhere.example"]}
        response = sign_in(
            web, row, idp, name_id="opaque-1", attributes=attributes, name_id_format=PERSISTENT
        )
        assert_refused(response, acme.account, "unverified_domain")

    def test_name_id_email_of_another_domain_with_no_attribute(self, web, acme, row, idp):
        response = sign_in(web, row, idp, name_id="mallory@elsewhere.example", attributes={})
        assert_refused(response, acme.account, "unverified_domain")

    def test_comment_injection_in_name_id_and_email(self, web, acme, row, idp):
        # CVE-2017-11427: sign "alice@acme.example.evil.example", split it with a comment.
        request = idp.parse_authn_request(start(web, row))
        urls = sp_urls(row)
        longer = "alice@acme.example.evil.example"
        signed = idp.login_response(
            urls["entity_id"],
            urls["acs_url"],
            in_response_to=request.id,
            name_id=longer,
            attributes={"email": [longer]},
        )
        forged = inject_comment(signed, ALICE)
        assert b"<!---->" in decode(forged)
        response = post_to_acs(web, row, forged, request.relay_state)
        assert_refused(response, acme.account, "unverified_domain")
        assert not User.objects.filter(email=ALICE).exists()

    def test_deactivated_person_is_refused(self, web, acme, row, idp):
        from tests.factories import MembershipFactory, UserFactory

        alice = UserFactory(email=ALICE, is_active=False)
        MembershipFactory(account=acme.account, user=alice)
        assert_refused(sign_in(web, row, idp), acme.account, "deactivated")
        assert "_auth_user_id" not in web.session

    def test_two_verified_domains_of_two_accounts(self, web, acme, row, idp):
        # Beta verified beta.example; Acme's IdP asserting a beta.example address is refused.
        beta = make_tenant(name="Beta")
        verified_domain(beta.account, "beta.example")
        verified_domain(acme.account, "acme-two.example")
        attributes = {**ATTRIBUTES, "email": ["bob@beta.example"]}
        response = sign_in(web, row, idp, name_id="bob@beta.example", attributes=attributes)
        assert_refused(response, acme.account, "unverified_domain")
        attributes = {**ATTRIBUTES, "email": ["carol@acme-two.example"]}
        assert (
            sign_in(web, row, idp, name_id="carol@acme-two.example", attributes=attributes).status_code == 302
        )


# --- SAML: message-level attacks ---------------------------------------------------------------


class TestSamlMessages:
    def test_a_response_with_two_assertions(self, web, acme, row, idp):
        request = idp.parse_authn_request(start(web, row))
        urls = sp_urls(row)
        signed = idp.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES
        )
        root = etree.fromstring(decode(signed))
        assertion = root.find("saml:Assertion", NS)
        twin = copy.deepcopy(assertion)
        twin.set("ID", f"_{uuid.uuid4().hex}")
        assertion.addnext(twin)
        response = post_to_acs(web, row, encode(etree.tostring(root)), request.relay_state)
        assert_refused(response, acme.account)
        assert not User.objects.filter(email=ALICE).exists()

    def test_a_doctype_entity_expansion(self, web, acme, row):
        xml = (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&b;</samlp:Response>'
        )
        response = post_to_acs(web, row, encode(xml), json.dumps({"idp": str(row.id)}))
        assert_refused(response, acme.account)

    def test_unsolicited_response_while_a_request_is_pending(self, web, acme, row, idp):
        # The browser has an AuthnRequest outstanding; an unsolicited response (no InResponseTo)
        # to an IdP that does not allow IdP-initiated login is still refused.
        request = idp.parse_authn_request(start(web, row))
        response = post_to_acs(web, row, unsolicited(row, idp), request.relay_state)
        assert_refused(response, acme.account)
        assert not User.objects.filter(email=ALICE).exists()

    def test_response_for_idp_x_posted_to_idp_y_of_another_account(self, web, acme, row, idp):
        # Beta configures an IdP row with Acme's IdP entity id and certificate (public metadata).
        beta = make_tenant(name="Beta")
        verified_domain(beta.account, "beta.example")
        beta_row = saml_idp_row(beta.account, idp, name="Copy of Acme's IdP", allow_idp_initiated=True)
        request = idp.parse_authn_request(start(web, row))
        urls = sp_urls(row)
        for_acme = idp.login_response(
            urls["entity_id"],
            urls["acs_url"],
            in_response_to=request.id,
            name_id="bob@beta.example",
            attributes={"email": ["bob@beta.example"]},
        )
        response = post_to_acs(web, beta_row, for_acme, json.dumps({"idp": str(beta_row.id)}))
        assert_refused(response, beta.account)
        assert not User.objects.filter(email="bob@beta.example").exists()

    def test_session_key_rotates_on_saml_login(self, web, acme, row, idp):
        request = idp.parse_authn_request(start(web, row))
        before = web.session.session_key
        assert before
        urls = sp_urls(row)
        signed = idp.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES
        )
        assert post_to_acs(web, row, signed, request.relay_state).status_code == 302
        assert web.session.session_key != before
        assert SsoSession.objects.get().session_key == web.session.session_key

    def test_huge_saml_response_is_not_a_500(self, web, acme, row):
        acs = urlsplit(sp_urls(row)["acs_url"]).path
        blob = base64.b64encode(b"<x>" + b"a" * (3 * 1024 * 1024) + b"</x>").decode()
        response = web.post(acs, {"SAMLResponse": blob, "psa_saml_browser_return": "1"})
        assert 400 <= response.status_code < 500, response.status_code


# --- SAML: RelayState / next -------------------------------------------------------------------

EVIL_TARGETS = [
    "//evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "https:/evil.example",
    "http://sp.example.test@evil.example/",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "\t//evil.example",
    " //evil.example",
    "///evil.example",
    "javascript:alert(1)",
    "data:text/html,x",
    "https://sp.example.test.evil.example/",
    "/\x00//evil.example",
]


class TestRelayState:
    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_idp_initiated_plain_relay_state(self, web, acme, idp, sso_settings, target):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        response = post_to_acs(web, row, unsolicited(row, idp), relay_state=target)
        assert_same_origin_redirect(response)

    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_idp_initiated_json_relay_state(self, web, acme, idp, sso_settings, target):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        relay = json.dumps({"idp": str(row.id), "next": target})
        assert_same_origin_redirect(post_to_acs(web, row, unsolicited(row, idp), relay_state=relay))

    @pytest.mark.parametrize(
        "relay",
        [
            '{"idp": "%s", "next": {"a": 1}}',
            '{"idp": "%s", "next": ["/a", "//evil.example"]}',
            '{"idp": "%s", "next": 5}',
            '{"idp": "%s", "next": true}',
            '{"idp": ["%s"]}',
            '{"idp": {"x": "%s"}}',
            '{"idp": 0, "x": "%s"}',
            '["%s"]',
            '"%s"',
            "null%s",
        ],
    )
    def test_odd_json_relay_states_are_never_a_500(self, web, acme, idp, sso_settings, relay):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        response = post_to_acs(web, row, unsolicited(row, idp), relay_state=relay % row.id)
        assert response.status_code in (302, 400, 403), (response.status_code, response.content[:300])
        if response.status_code == 302:
            assert_same_origin_redirect(response)

    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_sp_initiated_next(self, web, acme, row, idp, target):
        web.post("/logout/")
        response = sign_in(web, row, idp, next_url=target)
        assert_same_origin_redirect(response)

    def test_a_huge_relay_state(self, web, acme, idp, sso_settings):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        response = post_to_acs(web, row, unsolicited(row, idp), relay_state="/" + "a" * 100_000)
        assert response.status_code in (302, 400, 403)


# --- SAML single logout ------------------------------------------------------------------------


class TestSingleLogout:
    def test_an_idp_logout_request_to_an_idp_without_slo_url_ends_the_sessions(
        self, web, acme, idp, sso_settings
    ):
        # An IdP row without slo_url (optional) that sends a valid, signed LogoutRequest: there is no
        # URL to answer to, but the session still ends.
        row = saml_idp_row(acme.account, idp, name="No SLO")
        from accounts.sso.providers import provider_update
        from audit.actors import SYSTEM

        row = provider_update(provider=row, body={"slo_url": None}, actor=SYSTEM)
        assert row.config["slo_url"] is None
        browser = Client(HTTP_HOST=SP_HOST)
        assert sign_in(browser, row, idp).status_code == 302
        facts = browser.session["sso"]
        url = idp.logout_request_url(
            sp_urls(row)["slo_url"], facts["name_id"], facts["session_index"], sp_urls(row)["entity_id"]
        )
        response = web.get(location_path({"Location": url}))
        assert response.status_code == 302 and response["Location"] == "/login/?signed_out=1"
        assert browser.get("/").status_code == 302  # the session was ended

    def test_logout_request_for_another_idp(self, web, acme, row, idp, sso_settings):
        other = SamlIdp(
            entity_id="https://idp2.example.test/metadata", base_url="https://idp2.example.test/saml"
        )
        other_row = saml_idp_row(acme.account, other, name="Other")
        browser = Client(HTTP_HOST=SP_HOST)
        assert sign_in(browser, row, idp).status_code == 302
        facts = browser.session["sso"]
        # Signed by the other IdP, sent to the other IdP's SLS: the session started by the first
        # IdP must not end.
        url = other.logout_request_url(
            sp_urls(other_row)["slo_url"], facts["name_id"], None, sp_urls(other_row)["entity_id"]
        )
        web.get(location_path({"Location": url}))
        assert browser.get("/").status_code == 200
        # Signed by the other IdP, sent to the first IdP's SLS: refused.
        url = other.logout_request_url(
            sp_urls(row)["slo_url"], facts["name_id"], None, sp_urls(row)["entity_id"]
        )
        assert web.get(location_path({"Location": url})).status_code == 400
        assert browser.get("/").status_code == 200

    def test_post_to_sls_is_not_a_500(self, web, acme, row):
        response = web.post(f"/sso/saml/{row.id}/sls", {"SAMLRequest": "x"})
        assert response.status_code < 500


# --- OIDC ---------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _replace_id_token(oidc, make):
    """Swap the token endpoint's id_token for ``make(original_claims, original_header)``."""
    from tests.peers.oidc_provider import _b64url_decode

    def tamper(response):
        if (
            response.request.method == "POST"
            and response.request.path.endswith("/token")
            and response.status == 200
        ):
            document = json.loads(response.body)
            header, payload, _ = document["id_token"].split(".")
            document["id_token"] = make(
                json.loads(_b64url_decode(payload)), json.loads(_b64url_decode(header))
            )
            response.body = json.dumps(document).encode()
            response.headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        return response

    oidc.tamper_response = tamper


class TestOidc:
    def test_alg_none_id_token(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc)

        def none_token(claims, header):
            claims = {**claims, "email": "ceo@acme.example"}
            head = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{head}.{_b64url(json.dumps(claims).encode())}."

        _replace_id_token(oidc, none_token)
        response = oidc_sign_in(web, idp, oidc, "alice")
        assert_refused(response, acme.account)
        assert not User.objects.filter(email__in=["ceo@acme.example", ALICE]).exists()

    def test_hs256_id_token_signed_with_the_client_secret(self, web, acme, oidc):
        import jwt

        from accounts.sso.providers import client_secret

        idp = oidc_idp(acme.account, oidc)
        secret = client_secret(idp)

        def hs256(claims, header):
            claims = {**claims, "email": "ceo@acme.example"}
            return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": header.get("kid")})

        _replace_id_token(oidc, hs256)
        response = oidc_sign_in(web, idp, oidc, "alice")
        assert_refused(response, acme.account)
        assert not User.objects.filter(email="ceo@acme.example").exists()

    def test_replay_of_the_callback(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc)
        start_response = web.post(f"/sso/login/{idp.id}/", {"next": "/"})
        callback = oidc.login_via_http(start_response["Location"], "alice", "x")
        assert web.get(location_path({"Location": callback})).status_code == 302
        web.post("/logout/")
        # The same browser, the same callback URL again.
        again = web.get(location_path({"Location": callback}))
        assert_refused(again, acme.account)
        assert "_auth_user_id" not in web.session
        # Another browser.
        other = Client(HTTP_HOST=SP_HOST, raise_request_exception=False)
        assert_refused(other.get(location_path({"Location": callback})), acme.account)

    def test_login_csrf_with_the_attackers_callback(self, web, acme, oidc):
        # The attacker signs in as mallory-at-acme in their own browser, stops before the callback
        # and makes the victim's browser (which never started a sign-in) load it.
        oidc.add_account("eve", {"sub": "eve-1", "email": "eve@acme.example", "email_verified": True})
        idp = oidc_idp(acme.account, oidc)
        attacker = Client(HTTP_HOST=SP_HOST, raise_request_exception=False)
        authorize = attacker.post(f"/sso/login/{idp.id}/", {"next": "/"})["Location"]
        callback = oidc.login_via_http(authorize, "eve", "x")
        victim = web
        victim.post(f"/sso/login/{idp.id}/", {"next": "/"})  # even with a pending sign-in of its own
        response = victim.get(location_path({"Location": callback}))
        assert_refused(response, acme.account)
        assert "_auth_user_id" not in victim.session

    def test_session_key_rotates_on_oidc_login(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc)
        authorize = web.post(f"/sso/login/{idp.id}/", {"next": "/"})["Location"]
        before = web.session.session_key
        assert before
        callback = oidc.login_via_http(authorize, "alice", "x")
        assert web.get(location_path({"Location": callback})).status_code == 302
        assert web.session.session_key != before

    def test_email_verified_as_the_string_false_is_refused(self, web, acme, oidc):
        # Some providers (AWS Cognito) send email_verified as a string; "false" passes the
        # ``is False`` check in check_identity.
        oidc.add_account("una", {"sub": "una-1", "email": "una@acme.example", "email_verified": "false"})
        idp = oidc_idp(acme.account, oidc)
        seen = []

        def capture(response):
            if response.request.path.endswith("/token") and response.status == 200:
                import jwt as _jwt

                token = json.loads(response.body)["id_token"]
                seen.append(_jwt.decode(token, options={"verify_signature": False}))
            return response

        oidc.tamper_response = capture
        response = oidc_sign_in(web, idp, oidc, "una")
        assert seen and seen[0].get("email_verified") == "false", seen
        assert_refused(response, acme.account, "email_unverified")

    def test_an_unreachable_provider_is_a_page(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc, issuer="http://127.0.0.1:9")
        response = web.post(f"/sso/login/{idp.id}/", {"next": "/"})
        assert 400 <= response.status_code < 600 and response.status_code != 500
        assert b'id="sso-error"' in response.content

    def test_a_provider_without_discovery_is_a_page(self, web, acme, oidc):
        idp = oidc_idp(acme.account, oidc, issuer=oidc.issuer + "/nothing-here")
        response = web.post(f"/sso/login/{idp.id}/", {"next": "/"})
        assert response.status_code != 500 and b'id="sso-error"' in response.content

    @pytest.mark.parametrize(
        "query",
        [
            "code=" + "a" * 20000 + "&state=x",
            "state=" + quote("\x00") + "&code=x",
            "code=x&state=x&state=y",
            "code[]=x&state=y",
        ],
    )
    def test_odd_callbacks(self, web, acme, oidc, query):
        idp = oidc_idp(acme.account, oidc)
        web.post(f"/sso/login/{idp.id}/")
        response = web.get(f"/sso/oidc/{idp.id}/callback?{query}")
        assert 400 <= response.status_code < 500, response.status_code

    @pytest.mark.parametrize("target", EVIL_TARGETS)
    def test_oidc_next(self, web, acme, oidc, target):
        idp = oidc_idp(acme.account, oidc)
        response = oidc_sign_in(web, idp, oidc, "alice", next_url=target)
        assert_same_origin_redirect(response)


# --- Enforcement ---------------------------------------------------------------------------------


class TestEnforcement:
    def _enforced(self, acme, oidc):
        from accounts.rbac import account_settings_update
        from audit.actors import SYSTEM

        idp = oidc_idp(acme.account, oidc)
        account_settings_update(account=acme.account, changes={"enforce_sso": True}, actor=SYSTEM)
        acme.account.refresh_from_db()
        return idp

    def _member(self, account, email, role=AccountRole.MEMBER, **extra):
        from tests.factories import MembershipFactory, UserFactory

        user = UserFactory(email=email, **extra)
        user.set_password("a long enough password")
        user.save()
        MembershipFactory(account=account, user=user, role=role)
        return user

    def test_password_sign_in_through_the_admin_login_is_enforced(self, web, acme, oidc):
        # A staff Member of an enforcing account signs in with the password at /admin/login/.
        self._enforced(acme, oidc)
        self._member(acme.account, "staff@acme.example", is_staff=True)
        response = web.post(
            "/admin/login/?next=/admin/",
            {"username": "staff@acme.example", "password": "a long enough password"},
        )
        assert "_auth_user_id" not in web.session, "password sign-in accepted at /admin/login/"
        assert "requires single sign-on" in response.content.decode()

    def test_the_sso_session_lifetime_does_not_slide(self, web, acme, oidc):
        # auth_expiration_seconds is an absolute end: were it an inactivity expiry, every later write
        # to the session would push the end out again and an active SSO session would never end.
        import time

        from django.contrib.sessions.models import Session

        from accounts.rbac import account_settings_update
        from audit.actors import SYSTEM

        idp = oidc_idp(acme.account, oidc)
        account_settings_update(account=acme.account, changes={"auth_expiration_seconds": 300}, actor=SYSTEM)
        assert oidc_sign_in(web, idp, oidc, "alice").status_code == 302
        key = web.session.session_key
        first_end = Session.objects.get(session_key=key).expire_date
        time.sleep(2)
        # Something that writes to the session (here: starting another sign-in) leaves the end.
        web.post(f"/sso/login/{idp.id}/", {"next": "/"})
        later_end = Session.objects.get(session_key=key).expire_date
        assert later_end <= first_end, (first_end, later_end)


# --- More odd input --------------------------------------------------------------------------------


class TestMoreOddInput:
    def test_a_long_oidc_subject_is_refused(self, web, acme, oidc):
        # Same root cause as the SAML NameID: "<idp id>:<sub>" longer than UserSocialAuth.uid.
        oidc.add_account("longsub", {"sub": "s" * 240, "email": "ls@acme.example", "email_verified": True})
        idp = oidc_idp(acme.account, oidc)
        assert_refused(oidc_sign_in(web, idp, oidc, "longsub"), acme.account)

    @pytest.mark.parametrize("username", ["a@acme.example\x00", "\x00"])
    def test_the_email_first_step_with_a_nul_is_not_a_500(self, web, acme, oidc, username):
        oidc_idp(acme.account, oidc)
        response = web.post("/login/", {"username": username})
        assert response.status_code < 500, response.status_code

    def test_a_staff_owners_admin_login_is_audited_break_glass(self, web, acme, oidc):
        from django.core import mail

        TestEnforcement()._enforced(acme, oidc)
        TestEnforcement()._member(acme.account, "root@acme.example", AccountRole.OWNER, is_staff=True)
        TestEnforcement()._member(acme.account, "other-owner@acme.example", AccountRole.OWNER)
        mail.outbox.clear()
        web.post("/admin/login/", {"username": "root@acme.example", "password": "a long enough password"})
        assert "_auth_user_id" in web.session
        page = web.get("/").content.decode()
        assert str(acme.workspace.id) in page  # the session acts in the enforcing account ...
        # ... as break-glass: recorded, and the other Owner told.
        assert audit_events(acme.account, "sso.break-glass-login"), "no sso.break-glass-login event"
