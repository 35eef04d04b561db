"""SAML 2.0 sign-in against a real IdP (pysaml2 signing real responses): SP-initiated and
IdP-initiated login, just-in-time creation, groups to teams, single logout both ways; and the attack
set, each refused with nothing created and an ``sso.login-failed`` audit event."""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from social_django.models import UserSocialAuth

from accounts.models import AccountMembership, SsoSession, TeamMember, User
from accounts.rbac import team_create
from accounts.sso.mappings import group_mappings_set
from accounts.sso.providers import provider_create
from accounts.sso.saml import sp_urls
from audit.actors import SYSTEM
from tests.accounts.sso.conftest import audit_events, location_path, verified_domain
from tests.conftest import make_tenant
from tests.peers.saml_idp import (
    XSW_VARIANTS,
    SamlIdp,
    strip_signatures,
    tamper_attribute,
    tamper_name_id,
    wrap_signature,
)

pytestmark = pytest.mark.django_db

ALICE = "alice@acme.example"
ATTRIBUTES = {"email": [ALICE], "firstName": ["Alice"], "lastName": ["Liddell"], "groups": ["engineers"]}


def saml_idp_row(account, peer: SamlIdp, *, name: str = "Acme SAML", **extra):
    row = provider_create(
        account=account,
        body={
            "kind": "saml",
            "name": name,
            "entity_id": peer.entity_id,
            "sso_url": peer.sso_url,
            "slo_url": peer.slo_url,
            "x509_certificates": [peer.cert_pem],
            **extra,
        },
        actor=SYSTEM,
    )
    urls = sp_urls(row)
    peer.add_sp(
        entity_id=urls["entity_id"],
        acs_url=urls["acs_url"],
        slo_url=urls["slo_url"],
        certificate=row.sp_certificate,
    )
    return row


@pytest.fixture
def idp():
    return SamlIdp()


@pytest.fixture
def row(acme, idp, sso_settings):
    return saml_idp_row(acme.account, idp)


def start(web, row, next_url: str = "/"):
    response = web.post(f"/sso/login/{row.id}/", {"next": next_url})
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def post_to_acs(web, row, saml_response: str, relay_state: str | None = None):
    """The IdP's HTTP-POST to the ACS, then the browser's same-site self-post that social-core asks
    for (so the session cookie comes along)."""
    data = {"SAMLResponse": saml_response}
    if relay_state is not None:
        data["RelayState"] = relay_state
    acs = urlsplit(sp_urls(row)["acs_url"]).path
    first = web.post(acs, data)
    assert first.status_code == 200 and b"psa_saml_browser_return" in first.content
    return web.post(acs, {**data, "psa_saml_browser_return": "1"})


def sign_in(web, row, idp, *, name_id=ALICE, attributes=None, next_url="/", **response_kwargs):
    request = idp.parse_authn_request(start(web, row, next_url))
    urls = sp_urls(row)
    saml_response = idp.login_response(
        urls["entity_id"],
        urls["acs_url"],
        in_response_to=request.id,
        name_id=name_id,
        attributes=ATTRIBUTES if attributes is None else attributes,
        **response_kwargs,
    )
    return post_to_acs(web, row, saml_response, request.relay_state)


def _refused(response, account, reason: str | None = None):
    assert response.status_code in (400, 403), (response.status_code, response.content[:300])
    page = response.content.decode()
    assert 'id="sso-error"' in page and "Traceback" not in page
    failures = audit_events(account, "sso.login-failed")
    assert failures, "no sso.login-failed event"
    if reason is not None:
        assert failures[-1].payload["reason"] == reason, failures[-1].payload
    return failures[-1]


def _nothing_created():
    assert not User.objects.filter(email__in=[ALICE, "mallory@acme.example", "ceo@acme.example"]).exists()
    assert not UserSocialAuth.objects.exists()


class TestSpInitiated:
    def test_a_signed_response_signs_the_person_in_and_creates_them(self, web, acme, row, idp):
        response = sign_in(web, row, idp, next_url="/?from=idp")
        assert response.status_code == 302 and response["Location"] == "/?from=idp"
        alice = User.objects.get(email=ALICE)
        assert (alice.first_name, alice.last_name) == ("Alice", "Liddell")
        assert AccountMembership.objects.filter(account=acme.account, user=alice).exists()
        assert UserSocialAuth.objects.get(user=alice).uid == f"{row.id}:{ALICE}"
        page = web.get("/").content.decode()
        assert ALICE in page and "Acme Corp" in page
        facts = web.session["sso"]
        assert facts["kind"] == "saml" and facts["name_id"] == ALICE and facts["session_index"]
        (succeeded,) = audit_events(acme.account, "sso.login-succeeded")
        assert succeeded.payload["kind"] == "saml" and succeeded.payload["groups"] == ["engineers"]

    @pytest.mark.parametrize(
        "signing", [{"want_signed": "response"}, {"want_signed": "both"}, {"want_signed": "assertion"}]
    )
    def test_each_signing_mode(self, web, acme, idp, sso_settings, signing):
        row = saml_idp_row(acme.account, idp, name=f"mode {signing['want_signed']}", **signing)
        assert sign_in(web, row, idp).status_code == 302

    def test_the_relay_state_names_the_idp_and_a_safe_next(self, web, acme, row, idp):
        location = start(web, row, "https://evil.example/phish")
        request = idp.parse_authn_request(location)
        urls = sp_urls(row)
        saml_response = idp.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES
        )
        response = post_to_acs(web, row, saml_response, request.relay_state)
        assert response.status_code == 302 and response["Location"] == "/"

    def test_groups_map_to_teams(self, web, acme, row, idp):
        team = team_create(account=acme.account, name="Engineering", actor=SYSTEM)
        group_mappings_set(
            account=acme.account, mappings=[{"group": "engineers", "team_id": str(team.id)}], actor=SYSTEM
        )
        assert sign_in(web, row, idp).status_code == 302
        assert TeamMember.objects.filter(team=team, user__email=ALICE).exists()


class TestIdpInitiated:
    def _unsolicited(self, row, idp, **kwargs):
        urls = sp_urls(row)
        return idp.login_response(urls["entity_id"], urls["acs_url"], attributes=ATTRIBUTES, **kwargs)

    def test_refused_unless_the_account_allows_it(self, web, acme, row, idp):
        _refused(post_to_acs(web, row, self._unsolicited(row, idp)), acme.account, "session_context_missing")
        _nothing_created()

    def test_allowed_it_signs_in_and_a_replay_is_refused(self, web, acme, idp, sso_settings):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        saml_response = self._unsolicited(row, idp)
        response = post_to_acs(web, row, saml_response, relay_state="/?landing=1")
        assert response.status_code == 302 and response["Location"] == "/?landing=1"
        assert User.objects.filter(email=ALICE).exists()

        other_browser = type(web)(HTTP_HOST="sp.example.test")
        _refused(post_to_acs(other_browser, row, saml_response), acme.account, "replayed")
        assert "_auth_user_id" not in other_browser.session

    def test_an_unsafe_relay_state_goes_home(self, web, acme, idp, sso_settings):
        row = saml_idp_row(acme.account, idp, allow_idp_initiated=True)
        response = post_to_acs(web, row, self._unsolicited(row, idp), relay_state="https://evil.example/")
        assert response.status_code == 302 and response["Location"] == "/"


class TestAttacks:
    """Every variant is refused, creates nothing, and is audited."""

    def _valid(self, web, row, idp, **kwargs):
        request = idp.parse_authn_request(start(web, row))
        urls = sp_urls(row)
        saml_response = idp.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES, **kwargs
        )
        return saml_response, request.relay_state

    def test_an_attribute_changed_after_signing(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp)
        forged = tamper_attribute(saml_response, "email", "ceo@acme.example")
        _refused(post_to_acs(web, row, forged, relay), acme.account)
        _nothing_created()

    def test_a_name_id_changed_after_signing(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp)
        _refused(
            post_to_acs(web, row, tamper_name_id(saml_response, "ceo@acme.example"), relay), acme.account
        )
        _nothing_created()

    def test_an_unsigned_response(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp)
        _refused(post_to_acs(web, row, strip_signatures(saml_response), relay), acme.account)
        _nothing_created()

    def test_only_the_response_signed_when_the_assertion_must_be(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp, sign_assertion=False)
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        _nothing_created()

    def test_a_signature_from_another_key(self, web, acme, row, idp):
        impostor = SamlIdp(entity_id=idp.entity_id, base_url="https://idp.example.test/saml")
        urls = sp_urls(row)
        impostor.add_sp(entity_id=urls["entity_id"], acs_url=urls["acs_url"], slo_url=urls["slo_url"])
        request = idp.parse_authn_request(start(web, row))
        forged = impostor.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES
        )
        _refused(post_to_acs(web, row, forged, request.relay_state), acme.account)
        _nothing_created()

    @pytest.mark.parametrize("variant", sorted(XSW_VARIANTS))
    def test_a_wrapped_signature(self, web, acme, idp, sso_settings, variant):
        signing = "response" if variant in ("XSW1", "XSW2") else "assertion"
        row = saml_idp_row(acme.account, idp, want_signed=signing)
        saml_response, relay = self._valid(web, row, idp)
        forged = wrap_signature(saml_response, evil_email="mallory@acme.example", variant=variant)
        _refused(post_to_acs(web, row, forged, relay), acme.account)
        _nothing_created()

    def test_a_wrong_audience(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp, audience="https://another-sp.example/metadata")
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        _nothing_created()

    def test_a_wrong_destination_and_recipient(self, web, acme, row, idp):
        saml_response, relay = self._valid(
            web, row, idp, destination="https://other.example/acs", recipient="https://other.example/acs"
        )
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        _nothing_created()

    def test_an_expired_response(self, web, acme, row, idp):
        now = dt.datetime.now(dt.UTC)
        saml_response, relay = self._valid(
            web, row, idp, not_before=now - dt.timedelta(hours=2), not_on_or_after=now - dt.timedelta(hours=1)
        )
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        _nothing_created()

    def test_a_response_not_yet_valid(self, web, acme, row, idp):
        now = dt.datetime.now(dt.UTC)
        saml_response, relay = self._valid(
            web, row, idp, not_before=now + dt.timedelta(hours=1), not_on_or_after=now + dt.timedelta(hours=2)
        )
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        _nothing_created()

    def test_a_replayed_sp_initiated_response(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp)
        assert post_to_acs(web, row, saml_response, relay).status_code == 302
        web.post("/logout/")
        _refused(post_to_acs(web, row, saml_response, relay), acme.account)
        assert "_auth_user_id" not in web.session

    def test_in_response_to_another_request(self, web, acme, row, idp):
        start(web, row)
        urls = sp_urls(row)
        saml_response = idp.login_response(
            urls["entity_id"], urls["acs_url"], in_response_to="_not-our-request", attributes=ATTRIBUTES
        )
        refused = _refused(post_to_acs(web, row, saml_response), acme.account, "malformed_response")
        assert "InResponseTo" in refused.payload["detail"]
        _nothing_created()

    def test_a_solicited_response_in_a_browser_that_did_not_ask(self, web, acme, row, idp):
        saml_response, relay = self._valid(web, row, idp)
        stranger = type(web)(HTTP_HOST="sp.example.test")
        _refused(post_to_acs(stranger, row, saml_response, relay), acme.account, "session_context_missing")
        _nothing_created()

    def test_an_assertion_from_another_accounts_idp(self, web, acme, row, idp):
        # Account B has its own IdP; its signed assertion for an Acme address is refused at Acme's
        # ACS (wrong key and issuer) and at B's own ACS (acme.example is not B's verified domain).
        other = make_tenant(name="Beta Ltd")
        verified_domain(other.account, "beta.example")
        beta_idp = SamlIdp(
            entity_id="https://idp.beta.example/metadata", base_url="https://idp.beta.example/saml"
        )
        beta_row = saml_idp_row(other.account, beta_idp, name="Beta SAML")

        request = idp.parse_authn_request(start(web, row))
        acme_urls = sp_urls(row)
        beta_idp.add_sp(entity_id=acme_urls["entity_id"], acs_url=acme_urls["acs_url"])
        into_acme = beta_idp.login_response(
            acme_urls["entity_id"], acme_urls["acs_url"], in_response_to=request.id, attributes=ATTRIBUTES
        )
        _refused(post_to_acs(web, row, into_acme, request.relay_state), acme.account)

        beta_request = beta_idp.parse_authn_request(start(web, beta_row))
        beta_urls = sp_urls(beta_row)
        own = beta_idp.login_response(
            beta_urls["entity_id"],
            beta_urls["acs_url"],
            in_response_to=beta_request.id,
            attributes=ATTRIBUTES,
        )
        _refused(
            post_to_acs(web, beta_row, own, beta_request.relay_state), other.account, "unverified_domain"
        )
        _nothing_created()
        assert not AccountMembership.objects.filter(account=acme.account, user__email=ALICE).exists()

    def test_a_response_posted_to_another_idps_acs_of_the_same_account(self, web, acme, row, idp):
        second = SamlIdp(
            entity_id="https://idp2.example.test/metadata", base_url="https://idp2.example.test/saml"
        )
        second_row = saml_idp_row(acme.account, second, name="Second SAML")
        saml_response, relay = self._valid(web, row, idp)
        _refused(post_to_acs(web, second_row, saml_response, relay), acme.account)
        _nothing_created()

    def test_garbage_is_a_clear_page(self, web, acme, row):
        acs = urlsplit(sp_urls(row)["acs_url"]).path
        for data in ({"SAMLResponse": "not base64!!"}, {"SAMLResponse": "PHhtbD4="}, {}):
            response = web.post(acs, {**data, "psa_saml_browser_return": "1"})
            assert response.status_code in (400, 403) and b'id="sso-error"' in response.content


class TestSingleLogout:
    def test_sp_initiated_logout_goes_through_the_idp(self, web, acme, row, idp):
        assert sign_in(web, row, idp).status_code == 302
        alice = User.objects.get(email=ALICE)
        response = web.post("/logout/")
        assert response.status_code == 302 and response["Location"].startswith(idp.slo_url)
        logout_request = idp.parse_logout_request(response["Location"])
        assert logout_request.name_id == ALICE and logout_request.session_index
        assert "_auth_user_id" not in web.session and not SsoSession.objects.filter(user=alice).exists()

        back = idp.logout_response_url(sp_urls(row)["slo_url"], logout_request.id, sp_urls(row)["entity_id"])
        done = web.get(location_path({"Location": back}))
        assert done.status_code == 302 and done["Location"] == "/login/?signed_out=1"
        assert audit_events(acme.account, "sso.logout")[-1].payload["initiator"] == "SP"

    def test_a_logout_response_to_another_request_is_refused(self, web, acme, row, idp):
        sign_in(web, row, idp)
        web.post("/logout/")
        back = idp.logout_response_url(sp_urls(row)["slo_url"], "_another", sp_urls(row)["entity_id"])
        assert web.get(location_path({"Location": back})).status_code == 400

    def test_idp_initiated_logout_ends_the_session_and_answers_signed(self, web, acme, row, idp):
        assert sign_in(web, row, idp).status_code == 302
        facts = web.session["sso"]
        url = idp.logout_request_url(
            sp_urls(row)["slo_url"], facts["name_id"], facts["session_index"], sp_urls(row)["entity_id"]
        )
        # The IdP may reach the browser without our cookie (another tab, a back channel): the
        # session is found by NameID and SessionIndex.
        stranger = type(web)(HTTP_HOST="sp.example.test")
        answer = stranger.get(location_path({"Location": url}))
        assert answer.status_code == 302 and answer["Location"].startswith(idp.slo_url)
        assert idp.parse_logout_response(answer["Location"]).success
        assert web.get("/").status_code == 302  # the person's session is gone
        (event,) = audit_events(acme.account, "sso.logout")
        assert event.payload["initiator"] == "IdP" and event.payload["sessions_ended"] == 1

    def test_an_unsigned_or_forged_logout_request_is_refused(self, web, acme, row, idp):
        assert sign_in(web, row, idp).status_code == 302
        facts = web.session["sso"]
        slo, entity = sp_urls(row)["slo_url"], sp_urls(row)["entity_id"]
        unsigned = idp.logout_request_url(slo, facts["name_id"], facts["session_index"], entity, sign=False)
        assert web.get(location_path({"Location": unsigned})).status_code == 400
        impostor = SamlIdp(entity_id=idp.entity_id, base_url="https://idp.example.test/saml")
        impostor.add_sp(entity_id=entity, acs_url=sp_urls(row)["acs_url"], slo_url=slo)
        forged = impostor.logout_request_url(slo, facts["name_id"], facts["session_index"], entity)
        assert web.get(location_path({"Location": forged})).status_code == 400
        assert web.get("/").status_code == 200  # still signed in


def test_sp_metadata_names_the_acs_slo_and_signing_certificate(web, row):
    xml = web.get(f"/sso/saml/{row.id}/metadata").content.decode()
    urls = sp_urls(row)
    assert urls["acs_url"] in xml and urls["slo_url"] in xml and urls["entity_id"] in xml
    body = "".join(line for line in row.sp_certificate.splitlines() if "CERTIFICATE" not in line)
    assert 'AuthnRequestsSigned="true"' in xml and body[:60] in xml.replace("\n", "")


class TestSignedRequests:
    def test_authn_requests_are_signed_and_the_idp_checks_them(self, web, acme, row, idp):
        location = start(web, row)
        query = parse_qs(urlsplit(location).query)
        assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
        assert idp.parse_authn_request(location).issuer == sp_urls(row)["entity_id"]
        forged = location.replace("Signature=", "Signature=AAAA")
        with pytest.raises(Exception):  # noqa: B017 - pysaml2 raises its own signature errors
            idp.parse_authn_request(forged)

    def test_the_sp_certificate_rotates(self, web, acme, row, idp):
        from rest_framework.test import APIClient

        from accounts.permissions import AccountRole
        from tests.factories import MembershipFactory, UserFactory

        owner = UserFactory()
        MembershipFactory(account=acme.account, user=owner, role=AccountRole.OWNER)
        api = APIClient()
        api.force_authenticate(owner)
        url = f"/api/accounts/{acme.account.id}/sso/identity_providers/{row.id}"
        before = api.get(url).json()["service_provider"]["x509_certificate"]
        assert before == row.sp_certificate and "PRIVATE" not in str(api.get(url).json())
        rotated = api.post(f"{url}/rotate_sp_certificate").json()["service_provider"]["x509_certificate"]
        assert rotated != before and "BEGIN CERTIFICATE" in rotated
        assert audit_events(acme.account, "sso.identity-provider-updated")[-1].payload[
            "sp_certificate_rotated"
        ]
        # Until the IdP has the new certificate, our requests no longer verify there.
        with pytest.raises(Exception):  # noqa: B017
            idp.parse_authn_request(start(web, row))


def test_housekeeping_forgets_expired_assertions_and_ended_sessions(web, acme, row, idp):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from accounts.models import SsoAssertion
    from accounts.sso.housekeeping import sso_purge_expired

    assert sign_in(web, row, idp).status_code == 302
    (used,) = SsoAssertion.objects.all()
    assert sso_purge_expired() == 0  # the assertion is still valid, the session still open
    SsoAssertion.objects.filter(pk=used.pk).update(expires_at=timezone.now() - timedelta(hours=2))
    Session.objects.filter(session_key=web.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert sso_purge_expired() == 2
    assert not SsoAssertion.objects.exists() and not SsoSession.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "SAMLRequest=not-base64!!",
        "SAMLRequest=PHhtbD4%3D",
        "SAMLResponse=AAAA",
        "SAMLResponse=not-base64!!&SigAlg=x&Signature=y",
    ],
)
def test_garbage_at_the_logout_endpoint_is_a_clear_400(web, row, query):
    response = web.get(f"/sso/saml/{row.id}/sls?{query}")
    assert response.status_code == 400 and b'id="sso-error"' in response.content


def test_a_persistent_name_id_with_an_email_attribute_and_its_single_logout(web, acme, row, idp):
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    response = sign_in(web, row, idp, name_id="00u-opaque-42", name_id_format=persistent)
    assert response.status_code == 302
    assert UserSocialAuth.objects.get(user__email=ALICE).uid == f"{row.id}:00u-opaque-42"
    logout = web.post("/logout/")
    request = idp.parse_logout_request(logout["Location"])
    assert request.name_id == "00u-opaque-42"
    # The LogoutRequest names the person as the assertion did, format included.
    saml_request = parse_qs(urlsplit(logout["Location"]).query)["SAMLRequest"][0]
    xml = zlib.decompress(base64.b64decode(saml_request), -15).decode()
    assert f'Format="{persistent}"' in xml


def test_entra_id_claim_names_and_missing_optional_attributes(web, acme, row, idp):
    entra = {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["bea@acme.example"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Bea"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["g-1", "g-2"],
    }
    response = sign_in(web, row, idp, name_id="9f0c-opaque", attributes=entra)
    assert response.status_code == 302
    bea = User.objects.get(email="bea@acme.example")
    assert (bea.first_name, bea.last_name) == ("Bea", "")
    assert audit_events(acme.account, "sso.login-succeeded")[-1].payload["groups"] == ["g-1", "g-2"]

    # Nothing but the NameID, which is an address: enough.
    web.post("/logout/")
    assert sign_in(web, row, idp, name_id="carl@acme.example", attributes={}).status_code == 302
    assert User.objects.filter(email="carl@acme.example").exists()


def test_a_configured_attribute_name_wins(web, acme, idp, sso_settings):
    row = saml_idp_row(
        acme.account, idp, name="Mapped", attribute_mapping={"email": "corpMail", "groups": "teams"}
    )
    attributes = {"email": ["decoy@acme.example"], "corpMail": ["dana@acme.example"], "teams": ["t"]}
    assert sign_in(web, row, idp, name_id="opaque-dana", attributes=attributes).status_code == 302
    assert User.objects.filter(email="dana@acme.example").exists()
    assert not User.objects.filter(email="decoy@acme.example").exists()
