"""Every page of the console in a real browser, as an account Owner on the Enterprise plan with
something on each page: the page loads, the browser console stays clean, a screenshot is saved
under ``var/screenshots/console/`` of the repository (git-ignored, where a CI run keeps it as an
artifact), and axe-core (npm, injected into the page) finds no serious or critical accessibility
violation. The pages are found by following the console's own links from the account's first page
and the landing page ``/``, so a new page is scanned as soon as a link leads to it; the pages no
link of a signed-in Owner leads to are scanned on their own: the sign-in page's second step with an
Owner's break-glass path shown, an invitation's page (with and without its account's SSO offered)
and the page after accepting it.

And the keyboard: from the top of a console page, Tab reaches the skip link first, then the top
bar, then the account's navigation links in order, each with a visible focus outline."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings as django_settings

from accounts.api_keys.services import api_key_create
from accounts.models import SsoDomain
from accounts.permissions import AccountRole
from accounts.rbac import custom_role_create, invitation_create, team_create, team_members_add
from accounts.roles import ResolvedRole
from accounts.services import workspace_access_grant
from accounts.sso.providers import provider_create
from accounts.sso.tester import RESULTS_KEY
from audit.actors import SYSTEM
from tests.accounts.test_sso_providers import saml_body
from tests.conftest import make_tenant
from tests.factories import MembershipFactory, ServiceAccountFactory, UserFactory
from tests.live.test_console_browser import PASSWORD, an_admin_of_acme, signed_in, watch

AXE = Path(django_settings.BASE_DIR) / "tests" / "peers" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: Where the screenshots go: under the repository's ``var/`` (git-ignored), kept by a CI run.
SHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots" / "console"

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make install runs npm ci)"),
]

# Links that act or leave the console's pages: signing out, downloads, the Prefect UI, the API.
SKIP = re.compile(r"/logout|/export|/account/[^/]+/workspace/|/api/|/admin/")
MAX_PAGES = 150


def _filled_account():
    tenant, admin = an_admin_of_acme()
    account = tenant.account
    account.plan = "enterprise"
    account.save(update_fields=["plan"])
    owner = UserFactory(email="owner@acme.example")
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    team = team_create(account=account, name="Data platform", actor=owner)
    team_members_add(team=team, principals=[tenant.member], actor=owner)
    role = custom_role_create(account=account, name="Deployer", actor=owner, scopes=["run_deployments"])
    workspace_access_grant(
        workspace=tenant.workspace, principal=team, role=ResolvedRole(custom=role), actor=owner
    )
    invitation_create(
        account=account,
        email="soon@acme.example",
        actor=owner,
        workspace_grants=[(tenant.workspace, ResolvedRole(builtin="viewer"))],
    )
    api_key_create(owner=owner, name="laptop", actor=SYSTEM)
    # More service accounts than a page holds, so the pager is scanned too.
    ServiceAccountFactory.create_batch(55, account=account)
    provider_create(
        account=account,
        body={
            "kind": "oidc",
            "name": "Acme Okta",
            "issuer": "https://idp.acme.example",
            "client_id": "console",
            "client_secret": "secret-of-the-scan",
        },
        actor=SYSTEM,
    )
    provider_create(account=account, body=saml_body(name="Acme SAML"), actor=SYSTEM)
    return tenant, owner


def _enforcing_account():
    """Another account that enforces single sign-on for its verified domain globex.example, with an
    Owner there (whose sign-in page shows the break-glass path) and a pending invitation to an
    address of that domain (whose page offers the account's SSO). Returns the Owner's email and the
    invitation's link path."""
    tenant = make_tenant(name="Globex")
    account = tenant.account
    account.plan = "enterprise"
    account.save(update_fields=["plan"])
    owner = UserFactory(email="owner@globex.example")
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    SsoDomain.objects.create(
        account=account, domain="globex.example", token="t", verified_at=datetime.now(UTC)
    )
    provider_create(
        account=account,
        body={
            "kind": "oidc",
            "name": "Globex Entra",
            "issuer": "https://idp.globex.example",
            "client_id": "console",
            "client_secret": "secret-of-the-scan",
        },
        actor=SYSTEM,
    )
    account.settings = {**(account.settings or {}), "enforce_sso": True}
    account.save(update_fields=["settings"])
    invitation, token = invitation_create(account=account, email="newbie@globex.example", actor=owner)
    return owner.email, f"/console/invitations/{invitation.pk}/accept?token={token}"


def _with_a_test_sign_in_result(page, provider) -> None:
    """Put a test sign-in's report in the browser's session, as the flow leaves it, so the identity
    provider's page is scanned with its result shown."""
    from concurrent.futures import ThreadPoolExecutor
    from importlib import import_module

    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    [cookie] = [c for c in page.context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME]
    session = store(session_key=cookie["value"])
    # The session store is the database: written from a thread without Playwright's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_store_report, session, provider).result()


def _store_report(session, provider) -> None:
    session[RESULTS_KEY] = {
        str(provider.pk): {
            "ok": True,
            "kind": "oidc",
            "provider": provider.name,
            "at": "2026-12-01T10:00:00+00:00",
            "received": {"sub": "alice-0001", "email": "alice@acme.example", "groups": ["engineers"]},
            "details": {"subject": "alice-0001", "email": "alice@acme.example", "groups": ["engineers"]},
            "refusal": None,
            "who": {"outcome": "joins", "text": "alice@acme.example would join Acme Corp as a Member."},
            "teams": ["Data platform"],
            "grants": [],
            "groups_sent": True,
            "disabled": False,
        }
    }
    session.save()


def _console_links(page, base_url: str) -> set[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    found = set()
    for href in hrefs:
        url = urljoin(page.url, href)
        parts = urlsplit(url)
        if url.startswith(base_url) and parts.path.startswith("/console/") and not SKIP.search(parts.path):
            found.add(f"{base_url}{parts.path}" + (f"?{parts.query}" if parts.query else ""))
    return found


def _screenshot_and_scan(page, shots: Path, name: str, problems: list[str]) -> None:
    """A full-page screenshot of what ``page`` shows, then axe-core's serious and critical findings."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    for violation in result:
        if violation["impact"] in ("serious", "critical"):
            problems.append(f"{page.url}: {violation['impact']} {violation['id']} ({violation['help']}) "
                            f"at {violation['targets']}")  # fmt: skip


def _fresh_shots() -> Path:
    """``var/screenshots/console/``, emptied of the last run's screenshots."""
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    return SHOTS


def _without_a_session(account) -> dict:
    """What the pages scanned without a session need, made before the browser starts (the ORM
    refuses to run inside Playwright's event loop)."""
    owner_email, sso_invitation = _enforcing_account()
    invitation, token = invitation_create(account=account, email="newcomer@elsewhere.example", actor=SYSTEM)
    return {
        "owner_email": owner_email,
        "sso_invitation": sso_invitation,
        "invitation": f"/console/invitations/{invitation.pk}/accept?token={token}",
        "account_name": account.name,
    }


def _pages_without_a_session(
    browser, base_url: str, made: dict, shots: Path, problems: list[str], errors: list[str]
) -> list[str]:
    """The sign-in page's second step with the break-glass path open, two invitations' pages (one
    offering its account's SSO) and the page after accepting one, in a browser not signed in."""
    owner_email, sso_invitation = made["owner_email"], made["sso_invitation"]
    scanned = []
    page = browser.new_context().new_page()
    watch(page, errors)

    page.goto(f"{base_url}/login/")
    _screenshot_and_scan(page, shots, "login", problems)
    page.fill("input[name=username]", owner_email)
    page.click("button[type=submit]")
    page.get_by_text("Continue with Globex Entra").wait_for()
    glass = page.locator("details", has_text="break glass")
    glass.locator("summary").click()
    assert glass.get_attribute("open") is not None and page.locator("#id_password").is_visible()
    _screenshot_and_scan(page, shots, "login-break-glass", problems)
    scanned += ["/login/", "/login/ (break glass)"]

    page.goto(f"{base_url}{sso_invitation}")
    page.get_by_role("button", name="Sign in with your organisation's SSO").wait_for()
    _screenshot_and_scan(page, shots, "invitation-accept-sso", problems)
    page.goto(f"{base_url}{made['invitation']}")
    _screenshot_and_scan(page, shots, "invitation-accept", problems)
    page.get_by_label("First name").fill("New")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create my user and join").click()
    page.get_by_role("heading", name=f"You joined {made['account_name']}").wait_for()
    _screenshot_and_scan(page, shots, "invitation-accepted", problems)
    scanned += ["invitation accept (SSO offered)", "invitation accept", "invitation accepted"]
    page.context.close()
    return scanned


def test_every_console_page_is_clean_and_accessible(asgi_server, settings):
    settings.PUBLIC_URL = asgi_server.url
    tenant, owner = _filled_account()
    shots = _fresh_shots()
    made = _without_a_session(tenant.account)
    start = f"{asgi_server.url}/console/accounts/{tenant.account.handle}/"
    problems: list[str] = []
    from accounts.models import IdentityProvider

    provider = IdentityProvider.objects.get(account=tenant.account, kind="oidc")
    saml = IdentityProvider.objects.get(account=tenant.account, kind="saml")
    with signed_in(asgi_server.url, owner.email) as (browser, page, console_errors):
        _with_a_test_sign_in_result(page, provider)
        queue, seen = (
            [
                start,
                f"{asgi_server.url}/",
                f"{asgi_server.url}/console/me/api-keys/",
                f"{asgi_server.url}/console/me/connect/",
            ],
            set(),
        )
        while queue and len(seen) < MAX_PAGES:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = page.goto(url)
            landed = page.url
            if response is None or response.status >= 400:
                problems.append(f"{url}: {response.status if response else 'no answer'}")
                continue
            name = re.sub(r"[^a-z0-9]+", "-", urlsplit(landed).path.lower()).strip("-") or "index"
            if urlsplit(landed).query:
                name += "-" + re.sub(r"[^a-z0-9]+", "-", urlsplit(landed).query.lower()).strip("-")
            _screenshot_and_scan(page, shots, name, problems)
            queue.extend(sorted(_console_links(page, asgi_server.url) - seen))
        assert not queue, f"the scan stopped at {MAX_PAGES} pages with {len(queue)} left"
        # The scan can fail: an unlabelled input added to the last page is reported.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<input id=\"axe-probe\">')")
        probe = page.evaluate(
            "async () => (await axe.run('#axe-probe', {resultTypes: ['violations']})).violations.map(v => v.id)"
        )
        assert "label" in probe, probe
        outside = _pages_without_a_session(browser, asgi_server.url, made, shots, problems, console_errors)
        problems.extend(console_errors)
    assert len(seen) >= 15, f"only {len(seen)} console pages reached: {sorted(seen)}"
    # The pages this scan's account was filled for: a custom role's, the identity provider's (with
    # the test sign-in's report), the service accounts' second page.
    for part in (
        f"/sso/providers/{provider.pk}/",
        f"/sso/providers/{saml.pk}/",
        "/roles/",
        "service-accounts/?page=2",
    ):
        assert any(part in url for url in seen), (part, sorted(seen))
    assert f"{asgi_server.url}/" in seen and len(outside) == 5
    for name in ("index", "login-break-glass", "invitation-accept-sso", "invitation-accepted"):
        assert (shots / f"{name}.png").stat().st_size > 0, name
    assert not problems, "\n".join(problems)


_FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(), text: (el.innerText || el.textContent || '').trim().slice(0, 60),
    href: el.getAttribute('href'), inSideNav: !!el.closest('nav.side'), inMain: !!el.closest('main'),
    inHeader: !!el.closest('header.top'),
    outlineStyle: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) || 0,
    visible: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
      && box.left < innerWidth && box.top < innerHeight,
  };
}"""


def test_tab_reaches_the_skip_link_then_the_navigation_with_a_visible_focus(asgi_server, settings):
    """From the top of a console page, Tab focuses the skip link first, then the top bar's controls,
    then the account's navigation links in the order shown, before anything of the page's content;
    every focused control is on screen with a visible focus outline (computed style)."""
    settings.PUBLIC_URL = asgi_server.url
    tenant, admin = an_admin_of_acme()
    members = f"{asgi_server.url}/console/accounts/{tenant.account.handle}/members/"
    with signed_in(asgi_server.url, admin.email) as (_browser, page, console_errors):
        page.goto(members)
        expected_nav = page.eval_on_selector_all("nav.side a", "els => els.map(e => e.getAttribute('href'))")
        assert len(expected_nav) >= 5, expected_nav
        focused = []
        for _ in range(40):
            page.keyboard.press("Tab")
            now = page.evaluate(_FOCUSED)
            focused.append(now)
            if now["inMain"]:
                break
        first = focused[0]
        assert first["tag"] == "a" and first["href"] == "#main" and first["text"] == "Skip to content", first
        # Before the navigation: only the top bar.
        nav_at = next(i for i, f in enumerate(focused) if f["inSideNav"])
        assert all(f["inHeader"] for f in focused[1:nav_at]), focused[:nav_at]
        nav = [f["href"] for f in focused if f["inSideNav"]]
        assert nav == expected_nav, (nav, expected_nav)
        assert focused[-1]["inMain"], "Tab never reached the page's content"
        for f in focused:
            assert f["outlineStyle"] not in ("none", "") and f["outlineWidth"] >= 2, f
            assert f["visible"], f
        # The skip link leads into the content: Enter on it moves focus to <main>.
        page.goto(members)
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        assert not console_errors, console_errors
