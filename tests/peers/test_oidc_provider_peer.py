"""The OIDC test peer itself: a real oidc-provider behind the tamper proxy signs a person in with the
authorization code flow (PKCE S256, state, nonce), and its id_token validates with PyJWT -- unless
the proxy tampers with it. No Django database is used."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.peers.oidc_provider import OidcProvider, OidcProviderError

REDIRECT_URI = f"http://sp.example.test/sso/oidc/{uuid.uuid4()}/callback"
POST_LOGOUT_URI = "http://sp.example.test/signed-out"
ACCOUNTS = {
    "alice": {
        "sub": "alice-0001",
        "email": "alice@example.test",
        "email_verified": True,
        "given_name": "Alice",
        "family_name": "Liddell",
        "groups": ["engineering", "admins"],
    },
    "bob": {
        "email": "bob@example.test",
        "given_name": "Bob",
        "family_name": "Builder",
        "groups": [],
        "password": "correct horse",
    },
}


@pytest.fixture(scope="module")
def provider():
    with OidcProvider(
        redirect_uris=[REDIRECT_URI], accounts=ACCOUNTS, post_logout_redirect_uris=[POST_LOGOUT_URI]
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def _reset(provider):
    provider.reset()
    yield
    provider.reset()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize(provider: OidcProvider, login: str = "alice", password: str = "anything", **extra):
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile groups",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    url = f"{provider.authorization_endpoint}?{urlencode(params)}"
    redirect = provider.login_via_http(url, login, password)
    return redirect, state, nonce, verifier


def _exchange(provider: OidcProvider, code: str, verifier: str, basic: bool = False) -> dict:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    auth = None
    if basic:
        auth = (provider.client_id, provider.client_secret)
    else:
        data.update(client_id=provider.client_id, client_secret=provider.client_secret)
    response = httpx.post(provider.token_endpoint, data=data, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _verify(provider: OidcProvider, id_token: str) -> dict:
    key = jwt.PyJWKClient(provider.jwks_uri).get_signing_key_from_jwt(id_token)
    return jwt.decode(
        id_token, key.key, algorithms=["RS256"], audience=provider.client_id, issuer=provider.issuer
    )


def test_discovery_through_the_proxy(provider):
    response = httpx.get(provider.discovery_url, timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == provider.issuer
    assert document["authorization_endpoint"].startswith(provider.issuer + "/")
    assert "S256" in document["code_challenge_methods_supported"]
    assert {"client_secret_post", "client_secret_basic"} <= set(
        document["token_endpoint_auth_methods_supported"]
    )
    assert {"openid", "email", "profile", "groups"} <= set(document["scopes_supported"])
    assert "groups" in document["claims_supported"]
    assert document["end_session_endpoint"].startswith(provider.issuer + "/")
    assert ("GET", "/.well-known/openid-configuration") in provider.requests


def test_code_flow_with_pkce_state_and_nonce(provider):
    redirect, state, nonce, verifier = _authorize(provider)
    assert redirect.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(redirect).query)
    assert query["state"] == [state]
    assert "code" in query

    tokens = _exchange(provider, query["code"][0], verifier)
    claims = _verify(provider, tokens["id_token"])
    assert claims["sub"] == "alice-0001"
    assert claims["nonce"] == nonce
    assert claims["email"] == "alice@example.test"
    assert claims["email_verified"] is True
    assert claims["given_name"] == "Alice"
    assert claims["family_name"] == "Liddell"
    assert claims["groups"] == ["engineering", "admins"]

    userinfo = httpx.get(
        provider.userinfo_endpoint, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )
    assert userinfo.status_code == 200
    assert userinfo.json()["groups"] == ["engineering", "admins"]

    methods_paths = set(provider.requests)
    assert ("POST", "/token") in methods_paths
    assert any(method == "POST" and path.endswith("/login") for method, path in methods_paths)


def test_client_secret_basic_and_a_per_account_password(provider):
    with pytest.raises(OidcProviderError, match="refused the login"):
        _authorize(provider, login="bob", password="wrong")
    redirect, _state, nonce, verifier = _authorize(provider, login="bob", password="correct horse")
    tokens = _exchange(provider, parse_qs(urlsplit(redirect).query)["code"][0], verifier, basic=True)
    claims = _verify(provider, tokens["id_token"])
    assert claims["nonce"] == nonce
    assert claims["sub"] == "bob"
    assert claims["groups"] == []
    assert "password" not in claims


def test_pkce_is_required(provider):
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s",
    }
    redirect = provider.login_via_http(f"{provider.authorization_endpoint}?{urlencode(params)}", "alice", "x")
    query = parse_qs(urlsplit(redirect).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]


def test_tampered_id_token_no_longer_verifies(provider):
    provider.tamper_id_token = lambda payload: {**payload, "email": "mallory@example.test"}
    redirect, _state, _nonce, verifier = _authorize(provider)
    tokens = _exchange(provider, parse_qs(urlsplit(redirect).query)["code"][0], verifier)
    unverified = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert unverified["email"] == "mallory@example.test"
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(provider, tokens["id_token"])


def test_runtime_client_and_account_and_logout(provider):
    redirect_uri = f"http://sp.example.test/sso/oidc/{uuid.uuid4()}/callback"
    client = provider.add_client([redirect_uri], post_logout_redirect_uris=[POST_LOGOUT_URI])
    provider.add_account("carol", {"email": "carol@example.test", "groups": ["ops"]})
    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect_uri,
        "scope": "openid email groups",
        "state": "st",
        "nonce": "nn",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with httpx.Client(timeout=10) as browser:
        redirect = provider.login_via_http(
            f"{provider.authorization_endpoint}?{urlencode(params)}", "carol", "pw", client=browser
        )
        code = parse_qs(urlsplit(redirect).query)["code"][0]
        tokens = httpx.post(
            provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
            timeout=10,
        ).json()
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert claims["groups"] == ["ops"]
        assert claims["aud"] == client["client_id"]

        logout = {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": "bye",
        }
        after = provider.logout_via_http(
            f"{provider.end_session_endpoint}?{urlencode(logout)}", client=browser
        )
    assert after.startswith(POST_LOGOUT_URI)
    assert parse_qs(urlsplit(after).query)["state"] == ["bye"]


def test_a_start_that_never_says_ready_is_tried_again_then_reported(monkeypatch):
    from tests.peers import oidc_provider as peer

    starts = []
    real_start = peer.OidcProvider._start

    def counted(self):
        starts.append(1)
        return real_start(self)

    monkeypatch.setattr(peer.OidcProvider, "_start", counted)
    provider = OidcProvider(redirect_uris=[REDIRECT_URI], accounts=ACCOUNTS, startup_timeout=0.0)
    with pytest.raises(OidcProviderError, match="did not print READY"):
        provider.start()
    assert len(starts) == peer.STARTUP_ATTEMPTS == 2
    assert not provider.running
