"""Fixtures for single sign-on against real peers: an account with a verified domain, a web
(Django's test client on the SP's dotted host), and identity providers stored through the service
the account API uses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts.models import SsoDomain
from accounts.sso.backends import oidc_post_logout_redirect_uri, oidc_redirect_uri
from accounts.sso.providers import provider_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from tests.conftest import make_tenant
from tests.peers.oidc_provider import OidcProvider

SP_HOST = "sp.example.test"
PASSWORD = "a long enough password"

OIDC_PEOPLE = {
    "alice": {
        "sub": "alice-0001",
        "email": "alice@acme.example",
        "email_verified": True,
        "given_name": "Alice",
        "family_name": "Liddell",
        "groups": ["engineers", "admins"],
    },
    "mallory": {
        "sub": "mallory-0001",
        "email": "mallory@elsewhere.example",
        "email_verified": True,
        "given_name": "Mallory",
        "family_name": "Other",
        "groups": [],
    },
    "bob": {
        "sub": "bob-0001",
        "email": "bob@acme.example",
        "email_verified": True,
        "given_name": "Bob",
        "family_name": "Builder",
    },
}


@pytest.fixture
def sso_settings(settings):
    settings.PUBLIC_URL = f"https://{SP_HOST}"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, SP_HOST]
    return settings


@pytest.fixture
def web(sso_settings):
    return Client(HTTP_HOST=SP_HOST)


def verified_domain(account, domain: str) -> SsoDomain:
    return SsoDomain.objects.create(account=account, domain=domain, token="t", verified_at=datetime.now(UTC))


@pytest.fixture
def acme(db):
    """An Enterprise account with a workspace and the verified domain acme.example."""
    tenant = make_tenant(name="Acme Corp")
    verified_domain(tenant.account, "acme.example")
    return tenant


def audit_events(account, api_name: str):
    return list(AuditLogEntry.objects.filter(account=account, api_name=api_name).order_by("sequence"))


def location_path(response) -> str:
    parts = urlsplit(response["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="session")
def oidc_peer():
    """One provider per test process (``OidcProvider.shared`` stops it at exit)."""
    return OidcProvider.shared(accounts=OIDC_PEOPLE)


@pytest.fixture
def oidc(oidc_peer):
    oidc_peer.reset()
    yield oidc_peer
    oidc_peer.reset()


def oidc_idp(account, peer, *, issuer: str | None = None, name: str = "Acme OIDC", **extra):
    """An OIDC identity provider of ``account`` registered as a client at ``peer``."""
    import secrets

    client_id, client_secret = f"client-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    idp = provider_create(
        account=account,
        body={
            "kind": "oidc",
            "name": name,
            "issuer": issuer or peer.issuer,
            "client_id": client_id,
            "client_secret": client_secret,
            "scopes": ["openid", "email", "profile", "groups"],
            **extra,
        },
        actor=SYSTEM,
    )
    peer.add_client(
        [oidc_redirect_uri(idp)],
        client_id=client_id,
        client_secret=client_secret,
        post_logout_redirect_uris=[oidc_post_logout_redirect_uri(idp)],
    )
    return idp


def oidc_sign_in(web, idp, peer, login: str, *, next_url: str = "/", rewrite=None, browser=None):
    """Start at our server, sign in at the provider with plain HTTP, come back to the callback.
    ``browser`` (an httpx client) keeps the provider's cookies, its session, across calls."""
    start = web.post(f"/sso/login/{idp.id}/", {"next": next_url})
    assert start.status_code == 302, start.content[:500]
    authorize = start["Location"]
    if rewrite is not None:
        authorize = rewrite(authorize)
    callback = peer.login_via_http(authorize, login, "any password", client=browser)
    return web.get(location_path({"Location": callback}))


def with_seats(monkeypatch, seats: int) -> None:
    from billing import plans

    plan = plans.PLANS["enterprise"]
    monkeypatch.setitem(plans.PLANS, "enterprise", dataclasses.replace(plan, max_seats=seats))
