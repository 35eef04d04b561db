"""Journeys through the console in a real browser (Playwright driving Debian's chromium against
the live server), each ending outside the browser where the result is used:

1. an Admin creates a service account, copies its key with the page's copy button, grants it a role
   in a workspace, and the real ``prefect`` CLI works with that key against the workspace;
2. an Admin filters the audit log, downloads the filtered export, and the export verifies offline
   with ``audit_verify`` and the deployment's published key, while a tampered copy fails;
3. an Admin of a Hobby account upgrades through Stripe Checkout (localstripe behind the billing
   tests' front): the billing page says the upgrade is pending until the signed webhook arrives,
   then shows the new plan (and the pages the plan opens);
4. an Owner configures the account's OIDC provider (the npm ``oidc-provider`` peer), checks its
   discovery document, runs a test sign-in at its real login form (claims shown, nobody made),
   enforces single sign-on, and a new person signs in through it.

Each journey saves screenshots under the test's tmp dir and ends with the browser console clean."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import rbac
from accounts.models import ServiceAccount
from accounts.permissions import AccountRole
from audit.models import AuditLogEntry
from tests.billing.conftest import _localstripe_server, event, signed, stripe_fake  # noqa: F401 - fixtures
from tests.factories import MembershipFactory, UserFactory
from tests.live.browser import CHROMIUM, CHROMIUM_ARGS
from tests.live.test_console_browser import PASSWORD, an_admin_of_acme, sign_in, signed_in, watch

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def console_url(base_url: str, account, page: str = "") -> str:
    return f"{base_url}/console/accounts/{account.handle}/{page}"


# --------------------------------------------------------------------------------------------------
# 1. A service account made in the console, its copied key used by the prefect client
# --------------------------------------------------------------------------------------------------


def test_a_service_account_key_copied_from_the_console_drives_the_prefect_client(
    asgi_server, live_tenant, run_prefect, tmp_path
):
    account, workspace = live_tenant.account, live_tenant.workspace
    admin = UserFactory(email="admin@acme.example")
    MembershipFactory(account=account, user=admin, role=AccountRole.ADMIN)

    with signed_in(asgi_server.url, admin.email) as (_browser, page, console_errors):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server.url)
        page.goto(console_url(asgi_server.url, account, "service-accounts/"))
        page.get_by_label("Name", exact=True).fill("ci-deployer")
        page.get_by_label("Account role").select_option("member")
        page.get_by_role("button", name="Create").click()
        page.get_by_role("heading", name="Key of ci-deployer").wait_for()
        shown = page.inner_text("#new-key").strip()
        copy = page.get_by_role("button", name="Copy key")
        copy.click()
        page.get_by_role("button", name="Copied").wait_for()
        key = page.evaluate("navigator.clipboard.readText()")
        page.screenshot(path=str(tmp_path / "service-account-created.png"))

        # Without a grant the key reaches no workspace: 404, as for any workspace one cannot open.
        before_grant = httpx.get(
            f"{live_tenant.api_url}/variables/", headers={"Authorization": f"Bearer {key}"}
        )

        page.goto(console_url(asgi_server.url, account, f"workspaces/{workspace.pk}/"))
        page.get_by_label("Grant", exact=True).select_option(label="ci-deployer (service account)")
        page.get_by_label("Role", exact=True).select_option(label="Developer")
        page.get_by_role("button", name="Grant access").click()
        page.get_by_text(f"ci-deployer (service account) is Developer in {workspace.name}.").wait_for()
        page.screenshot(path=str(tmp_path / "service-account-granted.png"))

        set_run = run_prefect(["prefect", "variable", "set", "deploy_target", "from-the-console"], key=key)
        ls_run = run_prefect(["prefect", "variable", "ls"], key=key)

        # The page now shows the key's last use and from where.
        page.goto(console_url(asgi_server.url, account, "service-accounts/"))
        row = page.locator("tbody tr", has_text="ci-deployer").inner_text()
        page.screenshot(path=str(tmp_path / "service-account-used.png"))

    assert key == shown and key.startswith("pnb_"), (key[:8], shown[:8])
    assert before_grant.status_code == 404, before_grant.text
    assert set_run.returncode == 0, set_run.describe()
    assert ls_run.returncode == 0 and "deploy_target" in ls_run.stdout, ls_run.describe()
    assert "from-the-console" in ls_run.stdout, ls_run.describe()
    assert "from 127.0.0.1" in row and "never" not in row, row
    bot = ServiceAccount.objects.get(account=account, name="ci-deployer")
    assert bot.account_role == AccountRole.MEMBER
    assert console_errors == []


def test_the_copy_button_copies_on_a_deployment_served_over_plain_http(asgi_server, settings, tmp_path):
    """Served over plain HTTP on a host name, the page is no secure context and has no Clipboard API:
    the copy button still copies (it used to only select the key and say nothing)."""
    from playwright.sync_api import sync_playwright

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "console.test"]
    tenant, admin = an_admin_of_acme()
    base = asgi_server.url.replace("127.0.0.1", "console.test")
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP console.test 127.0.0.1"],
        )
        try:
            context = browser.new_context()
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            page = context.new_page()
            watch(page, console_errors)
            sign_in(page, base, admin.email, PASSWORD)
            page.goto(console_url(base, tenant.account, "service-accounts/"))
            secure = page.evaluate("window.isSecureContext")
            page.get_by_label("Name", exact=True).fill("nightly")
            page.get_by_role("button", name="Create").click()
            page.get_by_role("heading", name="Key of nightly").wait_for()
            shown = page.inner_text("#new-key").strip()
            page.get_by_role("button", name="Copy key").click()
            page.get_by_role("button", name="Copied").wait_for(timeout=5000)
            page.screenshot(path=str(tmp_path / "copied-over-plain-http.png"))
            # Read the clipboard back from a page that may (a secure one of the same browser).
            reader = context.new_page()
            reader.goto(f"{asgi_server.url}/login/")
            clipboard = reader.evaluate("navigator.clipboard.readText()")
        finally:
            browser.close()

    assert secure is False
    assert clipboard == shown and shown.startswith("pnb_")
    # Chromium reports, over plain HTTP, that Django's Cross-Origin-Opener-Policy header has no
    # effect there; nothing else may be in the console.
    ignored = "Cross-Origin-Opener-Policy header has been ignored"
    assert [e for e in console_errors if ignored not in e] == []


# --------------------------------------------------------------------------------------------------
# 2. The audit log filtered and exported in the console, the export verified offline
# --------------------------------------------------------------------------------------------------


def _verify(manifest: Path, public_key: str) -> tuple[str, list[dict]]:
    """``audit_verify --manifest … --public-key …`` as an auditor runs it: the output, and the
    queries it made (none: it reads no database)."""
    out = io.StringIO()
    with CaptureQueriesContext(connection) as queries:
        call_command("audit_verify", manifest=str(manifest), public_key=public_key, stdout=out)
    return out.getvalue(), list(queries)


def test_the_audit_log_filtered_exported_and_verified_offline(asgi_server, tmp_path):
    tenant, admin = an_admin_of_acme()
    owner = UserFactory(email="owner@acme.example")
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    rbac.team_create(account=tenant.account, name="platform", actor=admin)
    rbac.team_create(account=tenant.account, name="data", actor=owner)
    rbac.team_create(account=tenant.account, name="analytics", actor=admin)
    audit_url = console_url(asgi_server.url, tenant.account, "audit-log/")
    today = dt.datetime.now(dt.UTC).date()

    with signed_in(asgi_server.url, admin.email) as (_browser, page, console_errors):
        page.goto(audit_url)
        page.get_by_label("Actor (email, service account or id)").fill(admin.email)
        page.get_by_label("Event").select_option("team.created")
        page.get_by_label("From (UTC)").fill(today.isoformat())
        page.get_by_label("To (UTC, inclusive)").fill(today.isoformat())
        page.get_by_role("button", name="Filter", exact=True).click()
        page.wait_for_url(re.compile(r".*event=team\.created.*"))
        shown = page.locator("tbody tr[id^=event-]")
        shown_count = shown.count()
        shown_text = page.inner_text("main table")
        page.screenshot(path=str(tmp_path / "audit-log-filtered.png"), full_page=True)

        page.get_by_label("Format").select_option("jsonl")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download the filtered log").click()
        download = download_info.value
        archive = tmp_path / download.suggested_filename
        download.save_as(archive)
        # The auditor records the deployment's public key once, from where the page says.
        published = page.request.get(f"{asgi_server.url}/api/audit/signing_key").json()

    export_dir = tmp_path / "export"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(export_dir)
        names = zipped.namelist()
    [manifest_name] = [n for n in names if n.endswith(".manifest.json")]
    [data_name] = [n for n in names if n.endswith(".jsonl")]
    manifest = json.loads((export_dir / manifest_name).read_text())
    records = [json.loads(line) for line in (export_dir / data_name).read_text().splitlines()]
    verified, queries = _verify(export_dir / manifest_name, published["public_key"])

    # A tampered copy: one entry's team renamed in the file.
    tampered_dir = tmp_path / "tampered"
    shutil.copytree(export_dir, tampered_dir)
    data = tampered_dir / data_name
    data.write_text(data.read_text().replace('"platform"', '"platfrom"', 1))
    with pytest.raises(CommandError) as refused:
        _verify(tampered_dir / manifest_name, published["public_key"])
    # A copy whose manifest was edited to match the tampered file: its signature no longer holds.
    forged_dir = tmp_path / "forged"
    shutil.copytree(tampered_dir, forged_dir)
    forged = json.loads((export_dir / manifest_name).read_text())
    forged["file_sha256"] = hashlib.sha256((forged_dir / data_name).read_bytes()).hexdigest()
    (forged_dir / manifest_name).write_text(json.dumps(forged))
    with pytest.raises(CommandError) as forged_refused:
        _verify(forged_dir / manifest_name, published["public_key"])

    assert shown_count == 2 and "platform" in shown_text and "analytics" in shown_text, shown_text
    assert "data" not in shown_text.replace("analytics", "")
    assert [r["target_label"] for r in records] == ["platform", "analytics"]
    assert {r["api_name"] for r in records} == {"team.created"}
    assert manifest["entries"] == 2 and manifest["complete"] is False
    assert manifest["filters"]["action"] == "team.created" and manifest["filters"]["actor"] == str(admin.pk)
    assert manifest["filters"]["since"].startswith(today.isoformat())
    assert manifest["filters"]["until"].startswith((today + dt.timedelta(days=1)).isoformat())
    assert "export verified: 2 entries" in verified and queries == []
    assert "contents do not match its hash" in str(refused.value) or "SHA-256" in str(refused.value)
    assert "signature does not match" in str(forged_refused.value)
    exported = AuditLogEntry.objects.get(chain=tenant.account.pk, api_name="audit-log.exported")
    assert exported.payload["entries"] == 2 and exported.payload["format"] == "jsonl"
    assert console_errors == []


# --------------------------------------------------------------------------------------------------
# 3. An upgrade through Checkout: pending until the signed webhook, then the new plan
# --------------------------------------------------------------------------------------------------


def test_an_upgrade_through_checkout_applies_after_the_webhook(asgi_server, settings, stripe_fake, tmp_path):  # noqa: F811
    settings.PUBLIC_URL = asgi_server.url
    tenant, admin = an_admin_of_acme()
    account = tenant.account
    account.plan = "hobby"
    account.save(update_fields=["plan"])
    billing_url = console_url(asgi_server.url, account, "billing/")

    with signed_in(asgi_server.url, admin.email) as (_browser, page, console_errors):
        # Stripe's hosted Checkout page, played by the browser itself: a pay link to the session's
        # success URL (Stripe's redirect after payment) and a back link to its cancel URL.
        def checkout_page(route):
            session = next(s for s in stripe_fake.checkout_sessions if route.request.url.endswith(s["id"]))
            route.fulfill(
                status=200,
                content_type="text/html",
                body=(
                    "<!doctype html><html lang=en><title>Checkout</title><link rel=icon href='data:,'>"
                    f"<h1>Subscribe to {session['line_items'][0]['price']}</h1>"
                    f"<a href='{session['success_url']}'>Pay</a> <a href='{session['cancel_url']}'>Back</a></html>"
                ),
            )

        page.route(re.compile(r"^https://checkout\.stripe\.test/"), checkout_page)
        page.goto(billing_url)
        plan_before = page.inner_text("#plan")
        nav_before = page.inner_text("nav.side")
        # A first Checkout left without paying: back on the page, nothing changed.
        page.get_by_role("button", name=re.compile(r"^Move to Team")).click()
        page.wait_for_url(re.compile(r"^https://checkout\.stripe\.test/c/pay/cs_test_"))
        page.get_by_role("link", name="Back").click()
        page.wait_for_url(f"{billing_url}?checkout=cancelled")
        cancelled = page.inner_text("main")
        page.screenshot(path=str(tmp_path / "billing-cancelled.png"))

        page.get_by_role("button", name=re.compile(r"^Move to Team")).click()
        page.wait_for_url(re.compile(r"^https://checkout\.stripe\.test/c/pay/cs_test_"))
        page.screenshot(path=str(tmp_path / "checkout.png"))
        session = stripe_fake.checkout_sessions[-1]

        # The person pays: Stripe makes the subscription, then sends them back.
        subscription = stripe_fake.complete_checkout(session)
        page.get_by_role("link", name="Pay").click()
        page.wait_for_url(f"{billing_url}?checkout=success")
        pending = page.inner_text("#pending")
        plan_pending = page.inner_text("#plan")
        page.screenshot(path=str(tmp_path / "billing-pending.png"))

        # Stripe's signed webhook confirms the payment.
        body, signature = signed(
            event(
                "checkout.session.completed",
                {**session, "status": "complete", "subscription": subscription["id"]},
            )
        )
        delivered = httpx.post(
            f"{asgi_server.url}/billing/stripe/webhook",
            content=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        )

        page.goto(billing_url)
        plan_after = page.inner_text("#plan")
        still_pending = page.locator("#pending").count()
        nav_after = page.inner_text("nav.side")
        page.screenshot(path=str(tmp_path / "billing-upgraded.png"), full_page=True)

    assert "Plan: Hobby" in plan_before and "Audit log" not in nav_before
    assert "Checkout was cancelled; nothing changed" in cancelled and "is pending" not in cancelled
    assert session["line_items"][0]["price"] == "price_team_seat"
    assert session["success_url"] == f"{billing_url}?checkout=success"
    assert "The upgrade to the Team plan is pending" in pending and "Plan: Hobby" in plan_pending
    assert delivered.status_code == 200, delivered.text
    assert "Plan: Team" in plan_after and "status active" in plan_after, plan_after
    assert still_pending == 0
    assert "Audit log" in nav_after and "Service accounts" in nav_after
    account.refresh_from_db()
    assert account.plan == "team"
    assert console_errors == []


# --------------------------------------------------------------------------------------------------
# 5. OIDC configured in the console, checked, tested, enforced, and signed in through
# --------------------------------------------------------------------------------------------------


def test_oidc_configured_tested_enforced_and_signed_in_through(asgi_server, settings, tmp_path):
    """An Owner adds the account's OIDC provider on the console's form, runs the discovery check and
    a test sign-in at the provider's real login form (the page shows the claims and that nobody was
    made), enforces single sign-on, and a new person then signs in through it from the sign-in page."""
    from concurrent.futures import ThreadPoolExecutor

    from accounts.models import IdentityProvider, User
    from accounts.sso.backends import oidc_post_logout_redirect_uri, oidc_redirect_uri
    from tests.accounts.sso.conftest import OIDC_PEOPLE, verified_domain
    from tests.conftest import make_tenant
    from tests.peers.oidc_provider import OidcProvider

    settings.PUBLIC_URL = asgi_server.url
    peer = OidcProvider.shared(accounts=OIDC_PEOPLE)
    tenant = make_tenant(name="Acme Corp")
    verified_domain(tenant.account, "acme.example")
    owner = UserFactory(email="owner@acme.example")
    MembershipFactory(account=tenant.account, user=owner, role=AccountRole.OWNER)
    sso_url = console_url(asgi_server.url, tenant.account, "sso/")

    with signed_in(asgi_server.url, owner.email) as (browser, page, console_errors):
        page.goto(sso_url)
        page.get_by_role("link", name="Add an OpenID Connect identity provider").click()
        page.get_by_label("Name", exact=True).fill("Acme Okta")
        page.get_by_label("Issuer URL").fill(peer.issuer)
        page.get_by_label("Client id").fill("console-journey")
        page.get_by_label("Client secret").fill("a-client-secret-of-the-journey")
        page.get_by_label("Scopes").fill("openid email profile groups")
        page.get_by_role("button", name="Add identity provider").click()
        page.get_by_text("Acme Okta was added").wait_for()
        # (No ORM inside Playwright's sync API, whose event loop runs in this thread: the provider's
        # id is read from the page's address.)
        provider_id = re.search(r"/sso/providers/([0-9a-f-]{36})/", page.url).group(1)
        idp = IdentityProvider(id=provider_id)
        # What the page says to give the provider, registered there as its administrator would.
        page_text = page.inner_text("main")
        assert oidc_redirect_uri(idp) in page_text
        peer.add_client(
            [oidc_redirect_uri(idp)],
            client_id="console-journey",
            client_secret="a-client-secret-of-the-journey",
            post_logout_redirect_uris=[oidc_post_logout_redirect_uri(idp)],
        )

        page.get_by_role("button", name="Check the issuer's discovery document").click()
        discovery = page.inner_text("#discovery-result")

        page.get_by_role("button", name="Run a test sign-in").click()
        page.wait_for_selector("input[name=login]")
        assert page.url.startswith(peer.issuer)
        page.fill("input[name=login]", "alice")
        page.fill("input[name=password]", "any password")
        page.click("button[type=submit]")
        page.wait_for_selector("#test-result")
        tested = page.inner_text("#test-result")
        page.screenshot(path=str(tmp_path / "oidc-test-sign-in.png"), full_page=True)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the database, from a thread without a loop
            nobody_made = not pool.submit(User.objects.filter(email="alice@acme.example").exists).result()
        still_owner = page.evaluate("document.body.innerText").count("owner@acme.example") > 0

        page.goto(sso_url)
        page.get_by_role("button", name="Enforce single sign-on").click()
        page.get_by_text("Single sign-on is enforced.", exact=True).wait_for()
        page.screenshot(path=str(tmp_path / "oidc-enforced.png"), full_page=True)

        person = browser.new_context().new_page()
        watch(person, console_errors)
        person.goto(f"{asgi_server.url}/login/")
        person.fill("input[name=username]", "alice@acme.example")
        person.click("button[type=submit]")
        person.click("text=Continue with Acme Okta")
        person.wait_for_selector("input[name=login]")
        person.fill("input[name=login]", "alice")
        person.fill("input[name=password]", "any password")
        person.click("button[type=submit]")
        person.wait_for_selector("#signed-in")
        landing = person.inner_text("#signed-in")
        person.screenshot(path=str(tmp_path / "oidc-signed-in.png"))

    assert "Discovery works." in discovery
    assert "The sign-in would be accepted." in tested
    assert "alice@acme.example, a new person made just in time" in tested and "alice-0001" in tested
    assert nobody_made and still_owner
    assert "alice@acme.example" in landing and "Acme Corp" in landing
    alice = User.objects.get(email="alice@acme.example")
    assert tenant.account.memberships.filter(user=alice).exists()
    names = list(
        AuditLogEntry.objects.filter(account=tenant.account, api_name__startswith="sso.")
        .order_by("sequence")
        .values_list("api_name", flat=True)
    )
    assert names.count("sso.test-sign-in") == 1 and names.count("sso.login-succeeded") == 1
    assert names.index("sso.test-sign-in") < names.index("sso.login-succeeded")
    assert console_errors == []
