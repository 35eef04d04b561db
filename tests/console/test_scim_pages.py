"""The console's SCIM page: the base URL, tokens shown once and revoked after asking, and the
activity journal with its filters and pages, under the permission table and the plan."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ScimActivity, ScimToken
from accounts.scim.selectors import scim_base_url
from accounts.scim.services import scim_token_authenticate, scim_token_create
from audit.actors import SYSTEM
from tests.console.conftest import audited, make_org, session, steady_query_count

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


def shown_token(response) -> str:
    match = re.search(r'<code id="new-key">(scim_[^<]+)</code>', html(response))
    assert match, html(response)[:2000]
    return match.group(1)


def journal(account, token=None, *, n: int = 1, method="POST", status=201, ago=timedelta(0), path="/Users"):
    now = timezone.now()
    ScimActivity.objects.bulk_create(
        ScimActivity(
            account=account,
            token=token,
            method=method,
            path=path,
            status=status,
            occurred=now - ago,
            ip="192.0.2.7",
        )
        for _ in range(n)
    )


class TestTokens:
    def test_create_shows_the_token_once_and_it_works(self, org):
        browser = session(org.admin)
        response = browser.post(org.url("scim/"), {"name": "Okta"})
        assert response.status_code == 201
        raw = shown_token(response)
        assert 'data-copy="new-key"' in html(response)
        token = scim_token_authenticate(raw)
        assert token is not None and token.account_id == org.account.pk and token.name == "Okta"
        [event] = audited(org.account, "scim.token-created")
        assert event.payload["token_id"] == str(token.pk)
        listing = html(browser.get(org.url("scim/")))
        assert "Okta" in listing and raw not in listing and token.hint in listing
        assert scim_base_url(org.account.id) in listing and 'data-copy="scim-base-url"' in listing

    def test_a_missing_name_is_shown_inline(self, org):
        response = session(org.admin).post(org.url("scim/"), {"name": ""})
        assert response.status_code == 422 and "This field is required." in html(response)
        assert not ScimToken.objects.filter(account=org.account).exists()

    def test_revoke_asks_first_and_the_token_stops_working(self, org):
        token, raw = scim_token_create(account=org.account, actor=SYSTEM, name="Okta")
        browser = session(org.admin)
        confirm = browser.get(org.url(f"scim/tokens/{token.pk}/revoke"))
        assert confirm.status_code == 200 and f"Revoke the SCIM token Okta ({token.hint}…)?" in html(confirm)
        assert scim_token_authenticate(raw) is not None
        assert browser.post(org.url(f"scim/tokens/{token.pk}/revoke")).status_code == 302
        assert scim_token_authenticate(raw) is None
        assert len(audited(org.account, "scim.token-revoked")) == 1
        assert "Revoked" in html(browser.get(org.url("scim/")))

    def test_a_member_reads_but_sees_no_controls_and_is_refused(self, org):
        token, raw = scim_token_create(account=org.account, actor=SYSTEM, name="Okta")
        browser = session(org.member)
        page = html(browser.get(org.url("scim/")))
        assert "Okta" in page and scim_base_url(org.account.id) in page
        assert "Create token" not in page and "Revoke" not in page
        assert browser.post(org.url("scim/"), {"name": "sneaky"}).status_code == 403
        assert browser.get(org.url(f"scim/tokens/{token.pk}/revoke")).status_code == 403
        assert browser.post(org.url(f"scim/tokens/{token.pk}/revoke")).status_code == 403
        assert scim_token_authenticate(raw) is not None
        assert not ScimToken.objects.filter(name="sneaky").exists()

    def test_owner_and_admin_see_the_controls(self, org):
        scim_token_create(account=org.account, actor=SYSTEM, name="Okta")
        for person in (org.owner, org.admin):
            page = html(session(person).get(org.url("scim/")))
            assert "Create token" in page and "Revoke" in page

    def test_another_accounts_token_is_404(self, org):
        other = make_org()
        token, raw = scim_token_create(account=other.account, actor=SYSTEM, name="theirs")
        browser = session(org.admin)
        assert browser.get(org.url(f"scim/tokens/{token.pk}/revoke")).status_code == 404
        assert browser.post(org.url(f"scim/tokens/{token.pk}/revoke")).status_code == 404
        assert browser.get(other.url("scim/")).status_code == 404
        assert scim_token_authenticate(raw) is not None

    def test_a_team_plan_shows_no_scim_and_refuses_with_the_plans_words(self, db):
        org = make_org(plan="team")
        browser = session(org.owner)
        assert org.url("scim/") not in html(browser.get(org.url("members/")))
        page = html(browser.get(org.url("scim/")))
        assert "has no SCIM provisioning" in page and "Create token" not in page
        refused = browser.post(org.url("scim/"), {"name": "Okta"})
        assert refused.status_code == 422 and "The Team plan does not include scim." in html(refused)
        assert not ScimToken.objects.filter(account=org.account).exists()


class TestAllowlistExemption:
    def test_exempt_then_hold_again(self, org):
        browser = session(org.admin)
        assert "Exempt SCIM requests from the allowlist" in html(browser.get(org.url("scim/")))
        assert browser.post(org.url("scim/settings"), {"exempt_from_ip_allowlist": "on"}).status_code == 302
        org.account.refresh_from_db()
        assert org.account.settings["scim_exempt_from_ip_allowlist"] is True
        assert "Hold SCIM requests to the allowlist" in html(browser.get(org.url("scim/")))
        [event] = audited(org.account, "scim.settings-changed")
        assert event.payload["before"] == {"exempt_from_ip_allowlist": False}
        assert event.payload["after"] == {"exempt_from_ip_allowlist": True}

    def test_no_choice_changes_nothing_and_a_member_is_refused(self, org):
        refused = session(org.admin).post(org.url("scim/settings"), {})
        assert refused.status_code == 422 and "Choose on or off." in html(refused)
        member = session(org.member)
        assert "Exempt SCIM requests" not in html(member.get(org.url("scim/")))
        assert member.post(org.url("scim/settings"), {"exempt_from_ip_allowlist": "on"}).status_code == 403
        assert not audited(org.account, "scim.settings-changed")


class TestActivity:
    def test_filters_by_method_answer_token_and_age(self, org):
        okta, _ = scim_token_create(account=org.account, actor=SYSTEM, name="Okta")
        entra, _ = scim_token_create(account=org.account, actor=SYSTEM, name="Entra")
        journal(org.account, okta, method="POST", status=201, path="/Users/created-one")
        journal(org.account, okta, method="PATCH", status=409, path="/Users/conflicted-one")
        journal(org.account, entra, method="GET", status=200, path="/Users/entra-read")
        journal(org.account, okta, method="GET", status=200, path="/Users/old-read", ago=timedelta(days=3))
        journal(make_org().account, None, path="/Users/another-accounts")
        browser = session(org.admin)

        def shown(query: str) -> set[str]:
            page = html(browser.get(org.url(f"scim/?{query}")))
            return set(re.findall(r"/Users/([a-z-]+)</code>", page))

        everything = {"created-one", "conflicted-one", "entra-read", "old-read"}
        assert shown("") == everything
        assert shown("method=PATCH") == {"conflicted-one"}
        assert shown("status=4") == {"conflicted-one"}
        assert shown("status=2") == {"created-one", "entra-read", "old-read"}
        assert shown(f"token={entra.pk}") == {"entra-read"}
        assert shown("since=24h") == everything - {"old-read"}
        assert shown("method=GET&since=24h") == {"entra-read"}
        assert shown("method=BOGUS") == everything  # a filter it cannot read is dropped
        assert shown(f"token={make_org().account.pk}") == everything

    def test_paged_newest_first(self, org):
        journal(org.account, n=60, path="/Users/older", ago=timedelta(minutes=5))
        journal(org.account, n=1, path="/Users/newest")
        browser = session(org.admin)
        first = html(browser.get(org.url("scim/?status=2")))
        assert first.count("/Users/") == 50 and "/Users/newest" in first
        assert "page=2" in first and "status=2" in first.split("page=2")[0].rsplit("href", 1)[1]
        second = html(browser.get(org.url("scim/?status=2&page=2")))
        assert second.count("/Users/older") == 11 and "Older" not in second and "Newer" in second

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        few = steady_query_count(browser, org.url("scim/"))
        tokens = [scim_token_create(account=org.account, actor=SYSTEM, name=f"t{n}")[0] for n in range(5)]
        for token in tokens:
            journal(org.account, token, n=8)
        assert steady_query_count(browser, org.url("scim/")) == few
