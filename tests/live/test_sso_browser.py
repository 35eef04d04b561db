"""A person signs in as they would: a real browser (Playwright driving Debian's chromium) walks the
email-first sign-in to the account's OIDC provider (npm oidc-provider), fills its real login form,
and lands signed in on the page that names them and the account; signing out then ends the
provider's session too (RP-initiated logout), so the next sign-in asks for the password again."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.models import AccountMembership, User
from tests.accounts.sso.conftest import OIDC_PEOPLE, oidc_idp, verified_domain
from tests.conftest import make_tenant
from tests.live.browser import CHROMIUM, CHROMIUM_ARGS
from tests.peers.oidc_provider import OidcProvider

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def test_email_first_sign_in_through_the_oidc_providers_login_form(asgi_server, settings, tmp_path):
    from playwright.sync_api import sync_playwright

    settings.PUBLIC_URL = asgi_server.url
    peer = OidcProvider.shared(accounts=OIDC_PEOPLE)
    tenant = make_tenant(name="Acme Corp")
    verified_domain(tenant.account, "acme.example")
    idp = oidc_idp(tenant.account, peer, name="Acme Okta", single_logout=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{asgi_server.url}/login/")
            page.fill("input[name=username]", "alice@acme.example")
            page.click("button[type=submit]")
            page.click("text=Continue with Acme Okta")
            # The provider's own login form.
            page.wait_for_selector("input[name=login]")
            assert page.url.startswith(peer.issuer)
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", "whatever she types")
            page.click("button[type=submit]")
            page.wait_for_selector("#signed-in")
            landing = page.inner_text("#signed-in")
            page.screenshot(path=str(tmp_path / "signed-in.png"))
            final_url = page.url

            # Sign out: our session ends, the provider asks to confirm, and the browser comes back.
            page.click("text=Sign out")
            page.wait_for_selector("button[name=logout]")
            assert page.url.startswith(peer.issuer)
            page.click("button[name=logout]")
            page.wait_for_url(f"{asgi_server.url}/login/?signed_out=1")
            # The provider's session is over too: signing in again shows its login form.
            page.fill("input[name=username]", "alice@acme.example")
            page.click("button[type=submit]")
            page.click("text=Continue with Acme Okta")
            page.wait_for_selector("input[name=login]")
            asked_again = page.url.startswith(peer.issuer)
        finally:
            browser.close()

    assert final_url.rstrip("/") == asgi_server.url
    assert asked_again
    assert "alice@acme.example" in landing and "Acme Corp" in landing and "Acme Okta" in landing
    alice = User.objects.get(email="alice@acme.example")
    assert AccountMembership.objects.filter(account=tenant.account, user=alice).exists()
    assert idp.account_id == tenant.account.id
