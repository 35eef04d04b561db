from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import ip_allowlist, rbac
from accounts.api_keys.models import ApiKey
from accounts.models import IpAllowlistEntry
from tests.console.conftest import audited, make_org, session, steady_query_count

pytestmark = pytest.mark.django_db

HERE = "127.0.0.1"  # the test client's address


def listed(org, *networks: str) -> None:
    ip_allowlist.allowlist_replace(
        account=org.account,
        entries=[{"ip_network": n} for n in networks],
        actor=org.owner,
        requester_ip=HERE,
    )


def enforce(org) -> None:
    rbac.account_settings_update(
        account=org.account, changes={"enforce_ip_allowlist": True}, actor=org.owner, requester_ip=HERE
    )
    org.account.refresh_from_db()


class TestAllowlist:
    def test_entries_your_address_and_controls(self, org):
        listed(org, "10.0.0.0/8")
        IpAllowlistEntry.objects.filter(account=org.account).update(last_seen=timezone.now())
        html = session(org.admin).get(org.url("ip-allowlist/")).content.decode()
        assert "10.0.0.0/8" in html and "never" not in html.split("10.0.0.0/8")[1].split("</tr>")[0]
        assert (
            f"Your address: <code>{HERE}</code>" in html
            and "is not in the account&#x27;s IP allowlist" in html
        )
        assert "Turn enforcement on" in html and "Check who it would block" in html and "Remove" in html

    def test_adding_shows_the_dry_run_first_and_saves_only_when_asked(self, org):
        bot_key = ApiKey.objects.get(service_account=org.tenant.service_account)
        ApiKey.objects.filter(pk=bot_key.pk).update(last_used_at=timezone.now(), last_used_ip="203.0.113.9")
        browser = session(org.admin)
        preview = browser.post(org.url("ip-allowlist/"), {"ip_network": "10.0.0.0/8", "step": "preview"})
        html = preview.content.decode()
        assert (
            preview.status_code == 200 and "203.0.113.9" in html and org.tenant.service_account.name in html
        )
        assert "Save entry" in html and not IpAllowlistEntry.objects.exists()
        saved = browser.post(org.url("ip-allowlist/"), {"ip_network": "10.0.0.0/8", "step": "save"})
        assert saved.status_code == 302
        assert list(IpAllowlistEntry.objects.values_list("ip_network", flat=True)) == ["10.0.0.0/8"]
        assert len(audited(org.account, "ip-allowlist.changed")) == 1

    def test_a_bad_network_is_shown_under_the_field(self, org):
        response = session(org.admin).post(
            org.url("ip-allowlist/"), {"ip_network": "10.0.0.300", "step": "save"}
        )
        assert (
            response.status_code == 422
            and "is not a valid IP address or CIDR range" in response.content.decode()
        )
        assert not IpAllowlistEntry.objects.exists()

    def test_the_lockout_guard_refuses_enforcement_from_outside_the_list(self, org):
        listed(org, "10.0.0.0/8")
        response = session(org.admin).post(org.url("ip-allowlist/enforcement"), {"enforce": "on"})
        assert response.status_code == 422
        assert f"would block your own IP address ({HERE})" in response.content.decode()
        org.account.refresh_from_db()
        assert not org.account.settings.get("enforce_ip_allowlist")

    def test_the_lockout_guard_refuses_removing_your_own_entry_while_enforced(self, org):
        listed(org, f"{HERE}/32", "10.0.0.0/8")
        browser = session(org.admin)
        assert browser.post(org.url("ip-allowlist/enforcement"), {"enforce": "on"}).status_code == 302
        mine = IpAllowlistEntry.objects.get(ip_network=f"{HERE}/32")
        confirm = browser.get(org.url(f"ip-allowlist/{mine.pk}/remove")).content.decode()
        assert f"Remove {HERE}/32 from the IP allowlist?" in confirm
        response = browser.post(org.url(f"ip-allowlist/{mine.pk}/remove"))
        assert (
            response.status_code == 422
            and "This change would block your own IP address" in response.content.decode()
        )
        assert IpAllowlistEntry.objects.filter(pk=mine.pk).exists()
        other = IpAllowlistEntry.objects.get(ip_network="10.0.0.0/8")
        assert browser.post(org.url(f"ip-allowlist/{other.pk}/remove")).status_code == 302
        assert browser.post(org.url("ip-allowlist/enforcement"), {"enforce": "off"}).status_code == 302
        assert len(audited(org.account, "account.settings-changed")) == 2

    def test_a_member_cannot_open_it_and_a_forged_post_is_403(self, org):
        browser = session(org.member)
        assert "/ip-allowlist/" not in browser.get(org.url("members/")).content.decode()
        assert browser.get(org.url("ip-allowlist/")).status_code == 403
        assert (
            browser.post(org.url("ip-allowlist/"), {"ip_network": "0.0.0.0/0", "step": "save"}).status_code
            == 403
        )
        assert browser.post(org.url("ip-allowlist/enforcement"), {"enforce": "on"}).status_code == 403
        assert not IpAllowlistEntry.objects.exists()

    def test_a_plan_without_the_allowlist(self, db):
        org = make_org(plan="team")
        assert "/ip-allowlist/" not in session(org.admin).get(org.url("members/")).content.decode()
        response = session(org.admin).post(
            org.url("ip-allowlist/"), {"ip_network": "10.0.0.0/8", "step": "save"}
        )
        assert response.status_code == 422 and "does not include IP allowlisting" in response.content.decode()

    def test_another_accounts_entry_is_404(self, org):
        other = make_org()
        listed(other, "10.0.0.0/8")
        entry = IpAllowlistEntry.objects.get(account=other.account)
        browser = session(org.admin)
        assert browser.get(other.url("ip-allowlist/")).status_code == 404
        assert browser.post(org.url(f"ip-allowlist/{entry.pk}/remove")).status_code == 404
        assert IpAllowlistEntry.objects.filter(pk=entry.pk).exists()

    def test_no_per_row_queries(self, org):
        browser = session(org.admin)
        listed(org, "10.0.0.0/8")
        few = steady_query_count(browser, org.url("ip-allowlist/"))
        listed(org, *[f"10.{n}.0.0/16" for n in range(20)])
        assert steady_query_count(browser, org.url("ip-allowlist/")) == few
