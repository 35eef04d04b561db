"""Every page of the console in a real browser, as an account Owner on the Enterprise plan with
something on each page: the page loads, the browser console stays clean, a screenshot is saved
under the test's tmp dir (``console-pages/``), and axe-core (npm, injected into the page) finds no
serious or critical accessibility violation. The pages are found by following the console's own
links from the account's first page, so a new page is scanned as soon as a link leads to it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings as django_settings

from accounts.api_keys.services import api_key_create
from accounts.permissions import AccountRole
from accounts.rbac import custom_role_create, invitation_create, team_create, team_members_add
from accounts.roles import ResolvedRole
from accounts.services import workspace_access_grant
from accounts.sso.providers import provider_create
from accounts.sso.tester import RESULTS_KEY
from audit.actors import SYSTEM
from tests.factories import MembershipFactory, ServiceAccountFactory, UserFactory
from tests.live.test_console_browser import an_admin_of_acme, signed_in

AXE = Path(django_settings.BASE_DIR) / "tests" / "peers" / "axe" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make install runs npm ci)"),
]

# Links that act or leave the console's pages: signing out, downloads, the Prefect UI, the API.
SKIP = re.compile(r"/logout|/export|/account/[^/]+/workspace/|/api/|/admin/")
MAX_PAGES = 90


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
    return tenant, owner


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


def test_every_console_page_is_clean_and_accessible(asgi_server, settings, tmp_path):
    settings.PUBLIC_URL = asgi_server.url
    tenant, owner = _filled_account()
    shots = tmp_path / "console-pages"
    shots.mkdir()
    start = f"{asgi_server.url}/console/accounts/{tenant.account.handle}/"
    problems: list[str] = []
    from accounts.models import IdentityProvider

    provider = IdentityProvider.objects.get(account=tenant.account)
    with signed_in(asgi_server.url, owner.email) as (_browser, page, console_errors):
        _with_a_test_sign_in_result(page, provider)
        queue, seen = (
            [start, f"{asgi_server.url}/console/me/api-keys/", f"{asgi_server.url}/console/me/connect/"],
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
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
                " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
            )
            for violation in result:
                if violation["impact"] in ("serious", "critical"):
                    problems.append(f"{landed}: {violation['impact']} {violation['id']} ({violation['help']}) "
                                    f"at {violation['targets']}")  # fmt: skip
            queue.extend(sorted(_console_links(page, asgi_server.url) - seen))
        # The scan can fail: an unlabelled input added to the last page is reported.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<input id=\"axe-probe\">')")
        probe = page.evaluate(
            "async () => (await axe.run('#axe-probe', {resultTypes: ['violations']})).violations.map(v => v.id)"
        )
        assert "label" in probe, probe
        problems.extend(console_errors)
    assert len(seen) >= 15, f"only {len(seen)} console pages reached: {sorted(seen)}"
    # The pages this scan's account was filled for: a custom role's, the identity provider's (with
    # the test sign-in's report), the service accounts' second page.
    for part in (f"/sso/providers/{provider.pk}/", "/roles/", "service-accounts/?page=2"):
        assert any(part in url for url in seen), (part, sorted(seen))
    assert not problems, "\n".join(problems)
