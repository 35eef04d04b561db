from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from access.gate import authenticate_key
from accounts.api_keys.models import ApiKey
from accounts.models import ServiceAccount
from accounts.rbac import service_account_create_with_key
from audit.actors import SYSTEM
from tests.console.conftest import audited, make_org, session, steady_query_count

pytestmark = pytest.mark.django_db


def shown_key(response) -> str:
    match = re.search(r'<code id="new-key">(pnb_[^<]+)</code>', response.content.decode())
    assert match, response.content.decode()[:2000]
    return match.group(1)


class TestCreate:
    def test_the_key_is_shown_once_and_works(self, org):
        browser = session(org.admin)
        response = browser.post(org.url("service-accounts/"), {"name": "deployer", "role": "member"})
        assert response.status_code == 201
        key = shown_key(response)
        assert (
            'data-copy="new-key"' in response.content.decode()
            and "Key of deployer" in response.content.decode()
        )
        bot = ServiceAccount.objects.get(account=org.account, name="deployer")
        assert authenticate_key(key, ip="127.0.0.1").service_account_id == bot.pk
        assert len(audited(org.account, "service-account.created")) == 1
        assert len(audited(org.account, "api-key.created")) >= 1
        listing = browser.get(org.url("service-accounts/")).content.decode()
        assert "deployer" in listing and key not in listing and key[:16] in listing  # prefix + lookup id only

    def test_an_expiry_in_days(self, org):
        session(org.admin).post(
            org.url("service-accounts/"), {"name": "short", "role": "member", "expires_in_days": "2"}
        )
        key = ApiKey.objects.get(service_account__name="short")
        assert timedelta(days=1, hours=23) < key.expires_at - timezone.now() <= timedelta(days=2)

    def test_a_taken_name_is_shown_inline(self, org):
        response = session(org.admin).post(
            org.url("service-accounts/"), {"name": org.tenant.service_account.name, "role": "member"}
        )
        assert response.status_code == 422
        assert "already exists" in response.content.decode()

    def test_a_plan_without_service_accounts_refuses_with_the_plans_words(self, db):
        org = make_org(plan="hobby")
        response = session(org.admin).post(org.url("service-accounts/"), {"name": "bot", "role": "member"})
        assert response.status_code == 422 and "plan" in response.content.decode().lower()
        assert not ServiceAccount.objects.filter(account=org.account, name="bot").exists()

    def test_a_member_reads_but_sees_no_controls_and_a_forged_post_is_403(self, org):
        browser = session(org.member)
        html = browser.get(org.url("service-accounts/")).content.decode()
        assert org.tenant.service_account.name in html
        assert "Create a service account" not in html and "Rotate key" not in html and "Delete" not in html
        response = browser.post(org.url("service-accounts/"), {"name": "sneaky", "role": "owner"})
        assert response.status_code == 403 and not ServiceAccount.objects.filter(name="sneaky").exists()


class TestRotateAndDelete:
    def test_rotate_with_a_grace_period(self, org):
        bot, old, old_plaintext = service_account_create_with_key(
            account=org.account, name="worker", actor=SYSTEM
        )
        response = session(org.admin).post(
            org.url(f"service-accounts/{bot.pk}/rotate"), {"grace_seconds": "3600"}
        )
        assert response.status_code == 201
        new_plaintext = shown_key(response)
        assert "New key of worker" in response.content.decode()
        old.refresh_from_db()
        assert old.revoked_at is None
        assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
        assert authenticate_key(old_plaintext, ip=None) is not None  # still valid in the grace period
        assert authenticate_key(new_plaintext, ip=None).service_account_id == bot.pk
        [event] = audited(org.account, "api-key.rotated")
        assert event.payload["before"]["key_ids"] == [str(old.pk)]

    def test_rotate_now_asks_first_then_ends_the_old_key(self, org):
        bot, old, old_plaintext = service_account_create_with_key(
            account=org.account, name="worker", actor=SYSTEM
        )
        browser = session(org.admin)
        url = org.url(f"service-accounts/{bot.pk}/rotate")
        confirm = browser.post(url, {"grace_seconds": "0"})
        page = confirm.content.decode()
        assert confirm.status_code == 200 and "end the old key now?" in page
        assert "stops working at once" in page
        assert '<input type="hidden" name="grace_seconds" value="0">' in page
        assert '<input type="hidden" name="confirmed" value="yes">' in page
        assert f'href="{org.url("service-accounts/")}">Cancel' in page
        # Nothing changed yet: the old key works and no new key was shown.
        assert authenticate_key(old_plaintext, ip=None) is not None
        assert f'<form method="post" action="{url}">' in page
        assert "pnb_" not in page and not audited(org.account, "api-key.rotated")
        done = browser.post(url, {"grace_seconds": "0", "confirmed": "yes"})
        assert done.status_code == 201 and "New key of worker" in done.content.decode()
        assert authenticate_key(old_plaintext, ip=None) is None
        assert authenticate_key(shown_key(done), ip=None).service_account_id == bot.pk
        assert len(audited(org.account, "api-key.rotated")) == 1

    def test_rotate_with_a_grace_period_asks_nothing(self, org):
        bot, _, _ = service_account_create_with_key(account=org.account, name="worker", actor=SYSTEM)
        response = session(org.admin).post(
            org.url(f"service-accounts/{bot.pk}/rotate"), {"grace_seconds": "86400"}
        )
        assert response.status_code == 201 and "end the old key now?" not in response.content.decode()
        assert len(audited(org.account, "api-key.rotated")) == 1

    def test_a_grace_beyond_two_days_is_refused_inline(self, org):
        bot, _, _ = service_account_create_with_key(account=org.account, name="worker", actor=SYSTEM)
        response = session(org.admin).post(
            org.url(f"service-accounts/{bot.pk}/rotate"), {"grace_seconds": "999999"}
        )
        assert response.status_code == 422
        assert "old_key_expires_in_seconds must be between 0 and" in response.content.decode()

    def test_delete_asks_first_and_the_keys_stop_working(self, org):
        bot, _, plaintext = service_account_create_with_key(account=org.account, name="worker", actor=SYSTEM)
        browser = session(org.admin)
        confirm = browser.get(org.url(f"service-accounts/{bot.pk}/delete"))
        assert confirm.status_code == 200 and "Delete the service account worker?" in confirm.content.decode()
        assert browser.post(org.url(f"service-accounts/{bot.pk}/delete")).status_code == 302
        assert not ServiceAccount.objects.filter(pk=bot.pk).exists()
        assert authenticate_key(plaintext, ip=None) is None
        assert len(audited(org.account, "service-account.deleted")) == 1

    def test_another_accounts_service_account_is_404(self, org):
        other = make_org()
        theirs = other.tenant.service_account
        browser = session(org.admin)
        assert (
            browser.post(org.url(f"service-accounts/{theirs.pk}/rotate"), {"grace_seconds": "0"}).status_code
            == 404
        )
        assert browser.post(org.url(f"service-accounts/{theirs.pk}/delete")).status_code == 404
        assert browser.get(other.url("service-accounts/")).status_code == 404
        assert ServiceAccount.objects.filter(pk=theirs.pk).exists()

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        few = steady_query_count(browser, org.url("service-accounts/"))
        for n in range(10):
            service_account_create_with_key(account=org.account, name=f"bot-{n}", actor=SYSTEM)
        assert steady_query_count(browser, org.url("service-accounts/")) == few


class TestPagesAndSearch:
    def test_a_page_at_a_time_and_a_search_by_name(self, org, monkeypatch):
        monkeypatch.setattr("console.pages.service_accounts.PAGE_SIZE", 2)
        for name in ("alpha", "beta", "zulu-deployer"):
            service_account_create_with_key(account=org.account, name=name, actor=SYSTEM)
        browser = session(org.admin)
        # With the tenant's own service account (robot-…): 4, two a page, by name.
        first = browser.get(org.url("service-accounts/")).content.decode()
        assert "4 service accounts, 1–2 shown" in first and "Page 1 of 2" in first and "page=2" in first
        assert "alpha" in first and "zulu-deployer" not in first
        second = browser.get(org.url("service-accounts/") + "?page=2").content.decode()
        assert "zulu-deployer" in second and "alpha" not in second
        found = browser.get(org.url("service-accounts/") + "?q=DEPLOY").content.decode()
        assert "1 service account matching" in found and "zulu-deployer" in found
        table = found.split("<table>")[1].split("</table>")[0]
        assert "alpha" not in table and "beta" not in table
        nothing = browser.get(org.url("service-accounts/") + "?q=%25").content.decode()
        assert "0 service accounts matching" in nothing  # a LIKE wildcard is matched as itself

    def test_a_refusal_about_a_service_account_off_the_first_page_is_shown_on_its_row(self, org, monkeypatch):
        monkeypatch.setattr("console.pages.service_accounts.PAGE_SIZE", 1)
        bot, _, _ = service_account_create_with_key(account=org.account, name="zz-last", actor=SYSTEM)
        response = session(org.admin).post(
            org.url(f"service-accounts/{bot.pk}/rotate"), {"grace_seconds": "999999"}
        )
        assert response.status_code == 422
        html = response.content.decode()
        row = html.split(f'id="bot-{bot.pk}"')[1].split("</tr>")[0]
        assert "old_key_expires_in_seconds must be between 0 and" in row

    def test_the_page_costs_the_same_with_many_more(self, org, monkeypatch):
        monkeypatch.setattr("console.pages.service_accounts.PAGE_SIZE", 5)
        browser = session(org.admin)
        for n in range(6):
            service_account_create_with_key(account=org.account, name=f"bot-{n}", actor=SYSTEM)
        few = steady_query_count(browser, org.url("service-accounts/") + "?page=2")
        for n in range(6, 20):
            service_account_create_with_key(account=org.account, name=f"bot-{n}", actor=SYSTEM)
        assert steady_query_count(browser, org.url("service-accounts/") + "?page=2") == few
        html = browser.get(org.url("service-accounts/") + "?page=2").content.decode()
        assert html.count('<tr id="bot-') == 5
