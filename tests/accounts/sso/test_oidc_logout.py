"""OIDC single logout (RP-Initiated Logout 1.0) against the real provider: signing out here ends our
session and, where the IdP has ``single_logout``, the provider's too, through its
``end_session_endpoint``; without it, or when the provider cannot be reached, the sign-out is local."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from accounts.models import SsoSession, User
from accounts.sso.backends import oidc_post_logout_redirect_uri
from accounts.sso.providers import provider_update
from audit.actors import SYSTEM
from tests.accounts.sso.conftest import audit_events, location_path, oidc_idp, oidc_sign_in
from tests.peers.oidc_provider import OidcProviderError

pytestmark = pytest.mark.django_db


def provider_session_alive(web, idp, peer, browser) -> bool:
    """Whether the provider still signs this browser in without asking for a password."""
    authorize = web.post(f"/sso/login/{idp.id}/", {"next": "/"})["Location"]
    try:
        peer._drive(authorize, browser, credentials=None)
    except OidcProviderError:
        return False  # it showed its login form
    return True


def test_signing_out_ends_the_session_at_the_provider_too(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc, single_logout=True)
    with httpx.Client(timeout=10) as browser:
        assert oidc_sign_in(web, idp, oidc, "alice", browser=browser).status_code == 302
        session_key = web.session.session_key
        assert provider_session_alive(web, idp, oidc, browser)  # the control: the provider remembers

        response = web.post("/logout/")
        assert response.status_code == 302
        end_session = urlsplit(response["Location"])
        assert f"{end_session.scheme}://{end_session.netloc}{end_session.path}" == oidc.end_session_endpoint
        query = parse_qs(end_session.query)
        assert query["client_id"] == [idp.config["client_id"]]
        assert query["post_logout_redirect_uri"] == [oidc_post_logout_redirect_uri(idp)]
        hint = jwt.decode(query["id_token_hint"][0], options={"verify_signature": False})
        assert hint["sub"] == "alice-0001" and hint["aud"] == idp.config["client_id"]
        # Our session is over before the browser reaches the provider.
        assert web.get("/").status_code == 302
        assert not SsoSession.objects.filter(session_key=session_key).exists()

        back = oidc.logout_via_http(response["Location"], browser)
        assert back == oidc_post_logout_redirect_uri(idp)
        landing = web.get(location_path({"Location": back}))
        assert landing.status_code == 302 and landing["Location"] == "/login/?signed_out=1"
        assert not provider_session_alive(web, idp, oidc, browser)

    alice = User.objects.get(email="alice@acme.example")
    (logout,) = audit_events(acme.account, "sso.logout")
    assert logout.target_id == str(alice.id) and logout.payload["initiator"] == "SP"
    assert logout.payload["provider_id"] == str(idp.id)
    # What the session was: one the provider started.
    assert logout.payload["auth"] == {"method": "sso-oidc", "api_key_id": None}


def test_without_single_logout_the_sign_out_is_local(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc)
    with httpx.Client(timeout=10) as browser:
        oidc_sign_in(web, idp, oidc, "alice", browser=browser)
        assert "id_token" not in web.session["sso"]
        response = web.post("/logout/")
        assert response.status_code == 302 and response["Location"] == "/login/"
        assert web.get("/").status_code == 302
        assert not any(r.path.endswith("/session/end") for r in oidc.request_log)
        assert provider_session_alive(web, idp, oidc, browser)
    assert not audit_events(acme.account, "sso.logout")


def test_a_provider_that_cannot_be_reached_leaves_a_local_sign_out(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc, single_logout=True)
    oidc_sign_in(web, idp, oidc, "alice")
    provider_update(provider=idp, body={"issuer": "http://127.0.0.1:9/unreachable"}, actor=SYSTEM)
    response = web.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert web.get("/").status_code == 302


def test_the_signed_out_landing_is_get_only_and_404_for_unknown_providers(web, acme, oidc):
    idp = oidc_idp(acme.account, oidc, single_logout=True)
    assert web.get(f"/sso/oidc/{idp.id}/signed-out").status_code == 302
    assert web.post(f"/sso/oidc/{idp.id}/signed-out").status_code == 405
    assert web.get("/sso/oidc/00000000-0000-0000-0000-000000000000/signed-out").status_code == 404
