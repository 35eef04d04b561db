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
from accounts.rbac import invitation_create, team_create, team_members_add
from audit.actors import SYSTEM
from tests.factories import MembershipFactory, UserFactory
from tests.live.test_console_browser import an_admin_of_acme, signed_in

AXE = Path(django_settings.BASE_DIR) / "tests" / "peers" / "axe" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make install runs npm ci)"),
]

# Links that act or leave the console's pages: signing out, downloads, the Prefect UI, the API.
SKIP = re.compile(r"/logout|/export|/account/[^/]+/workspace/|/api/|/admin/")
MAX_PAGES = 60


def _filled_account():
    tenant, admin = an_admin_of_acme()
    account = tenant.account
    account.plan = "enterprise"
    account.save(update_fields=["plan"])
    owner = UserFactory(email="owner@acme.example")
    MembershipFactory(account=account, user=owner, role=AccountRole.OWNER)
    team = team_create(account=account, name="Data platform", actor=owner)
    team_members_add(team=team, principals=[tenant.member], actor=owner)
    invitation_create(account=account, email="soon@acme.example", actor=owner)
    api_key_create(owner=owner, name="laptop", actor=SYSTEM)
    return tenant, owner


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
    with signed_in(asgi_server.url, owner.email) as (_browser, page, console_errors):
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
    assert not problems, "\n".join(problems)
