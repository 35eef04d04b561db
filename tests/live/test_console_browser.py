"""The console in a real browser (Playwright driving Debian's chromium against the live server): an
Admin signs in, invites a new member from the Members page, the invitation's email carries the
link, and the invited person opens it, sets a password, signs in and finds themself a member; then
a plain Member's forged POST to the invite form is refused. And the IP allowlist: an entry added after
its dry run, enforcement on, and the lock-out guard refusing a self-excluding change."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core import mail

from accounts.models import AccountMembership, Invitation, IpAllowlistEntry, User
from accounts.permissions import AccountRole
from tests.conftest import make_tenant
from tests.factories import MembershipFactory, UserFactory
from tests.live.test_sso_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

PASSWORD = "correct horse battery staple"


def sign_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", email)
    page.click("button[type=submit]")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def watch(page, errors: list[str]) -> None:
    """Record a page's console errors and failed loads (the browser's own favicon request on the
    sign-in page, outside the console, is not one; a failed load is recorded with its address)."""

    def on_console(message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def on_response(response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            errors.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)


def an_admin_of_acme():
    tenant = make_tenant(name="Acme Corp")
    admin = UserFactory(email="admin@acme.example")
    MembershipFactory(account=tenant.account, user=admin, role=AccountRole.ADMIN)
    return tenant, admin


@contextmanager
def signed_in(base_url: str, email: str):
    """Chromium with a page signed in as ``email``: ``(browser, page, console errors)``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            console_errors: list[str] = []
            watch(page, console_errors)
            sign_in(page, base_url, email, PASSWORD)
            yield browser, page, console_errors
        finally:
            browser.close()


def test_invite_a_member_and_accept_as_them(asgi_server, settings, tmp_path):
    settings.PUBLIC_URL = asgi_server.url
    tenant, admin = an_admin_of_acme()
    members_url = f"{asgi_server.url}/console/accounts/{tenant.account.handle}/members/"

    with signed_in(asgi_server.url, admin.email) as (browser, page, console_errors):
        page.goto(f"{asgi_server.url}/console/")
        page.wait_for_url(members_url)
        htmx_loaded = page.evaluate("typeof window.htmx")
        page.get_by_label("Email address").fill("newcomer@acme.example")
        page.get_by_label("Account role").select_option("member")
        page.get_by_role("button", name="Send invitation").click()
        page.get_by_text("Invitation sent to newcomer@acme.example.").wait_for()
        page.screenshot(path=str(tmp_path / "members-invited.png"))
        pending = page.inner_text("#invitations-heading + table")

        [email] = mail.outbox
        link = re.search(r"http://\S+/console/invitations/\S+", email.body).group(0)

        newcomer = browser.new_context().new_page()
        watch(newcomer, console_errors)
        newcomer.goto(link)
        newcomer.get_by_label("First name").fill("New")
        newcomer.get_by_label("Password").fill("a long enough passphrase")
        newcomer.get_by_role("button", name="Create my user and join").click()
        newcomer.get_by_role("heading", name="You joined Acme Corp").wait_for()
        newcomer.get_by_role("link", name="Sign in").click()
        newcomer.wait_for_selector("input[name=username]")
        sign_in_after = newcomer.url
        newcomer.fill("input[name=username]", "newcomer@acme.example")
        newcomer.click("button[type=submit]")
        newcomer.fill("input[name=password]", "a long enough passphrase")
        newcomer.click("button[type=submit]")
        newcomer.wait_for_url(members_url)
        newcomer.screenshot(path=str(tmp_path / "newcomer-members.png"))
        as_newcomer = newcomer.content()

        # The newcomer is a plain Member: no edit controls, and a forged POST is refused.
        errors_before_forgery = list(console_errors)
        csrf = next(c["value"] for c in newcomer.context.cookies() if c["name"] == "csrftoken")
        forged = newcomer.request.post(
            members_url,
            form={"csrfmiddlewaretoken": csrf, "email": "sneaky@acme.example", "role": "owner"},
        )
        forged_body = forged.text()

    assert "newcomer@acme.example" in pending
    assert "/login/" in sign_in_after
    assert "Send invitation" not in as_newcomer and "Change role" not in as_newcomer
    assert "newcomer@acme.example" in as_newcomer and admin.email in as_newcomer
    newcomer_user = User.objects.get(email="newcomer@acme.example")
    assert (
        AccountMembership.objects.get(account=tenant.account, user=newcomer_user).role == AccountRole.MEMBER
    )
    assert forged.status == 403 and "create:invitation" in forged_body
    assert htmx_loaded == "object"
    assert errors_before_forgery == []  # the browser console stayed clean on every page
    assert not Invitation.objects.filter(email="sneaky@acme.example").exists()


def test_allowlist_entry_then_the_lockout_guard_refuses_a_self_excluding_change(asgi_server, tmp_path):
    """An Admin adds the browser's own address (seeing the dry run first) and an office range, turns
    enforcement on, then tries to remove their own entry: the lock-out guard refuses on the page."""
    tenant, admin = an_admin_of_acme()
    allowlist_url = f"{asgi_server.url}/console/accounts/{tenant.account.handle}/ip-allowlist/"

    with signed_in(asgi_server.url, admin.email) as (_browser, page, console_errors):
        page.goto(allowlist_url)
        your_address = page.inner_text("#your-address")
        for network in ("127.0.0.1/32", "10.0.0.0/8"):
            page.get_by_label("IP address or CIDR range").fill(network)
            page.get_by_role("button", name="Check who it would block").click()
            page.locator("#dry-run").wait_for()
            page.get_by_role("button", name="Save entry").click()
            page.get_by_text(f"{network} was added to the allowlist.").wait_for()
        page.get_by_role("button", name="Turn enforcement on").click()
        page.get_by_text("Enforcement of the IP allowlist is on.").wait_for()
        page.screenshot(path=str(tmp_path / "allowlist-enforced.png"))
        errors_before_refusal = list(console_errors)

        page.get_by_role("link", name="Remove 127.0.0.1/32").click()
        page.get_by_role("heading", name="Remove 127.0.0.1/32 from the IP allowlist?").wait_for()
        page.get_by_role("button", name="Remove entry").click()
        refusal = page.get_by_role("alert")
        refusal.wait_for()
        refused = refusal.inner_text()
        page.screenshot(path=str(tmp_path / "allowlist-lockout-refused.png"))

    assert "127.0.0.1" in your_address
    assert "This change would block your own IP address (127.0.0.1)" in refused
    assert set(
        IpAllowlistEntry.objects.filter(account=tenant.account).values_list("ip_network", flat=True)
    ) == {
        "127.0.0.1/32",
        "10.0.0.0/8",
    }
    tenant.account.refresh_from_db()
    assert tenant.account.settings["enforce_ip_allowlist"] is True
    assert errors_before_refusal == []
