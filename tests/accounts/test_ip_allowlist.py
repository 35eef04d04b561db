"""IP allowlists: the client address behind trusted proxies, the list in Prefect Cloud's shape,
enforcement on every surface, lock-out protection, audited (rate-limited) denials, my_access and
the dry run."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts.api_keys.models import ApiKey
from accounts.models import IpAllowlistEntry
from audit.context import resolve_client_ip
from audit.models import AuditLogEntry
from orchestration.events.auth import authorize_sync
from tests.accounts.test_account_api import add_member, client, make_org

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


class TestClientIp:
    def test_without_trusted_proxies_the_peer_is_the_client(self, settings):
        settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = [], 0
        assert resolve_client_ip("203.0.113.7", "198.51.100.1") == "203.0.113.7"

    def test_a_trusted_proxy_is_walked_right_to_left(self, settings):
        settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
        assert resolve_client_ip("10.0.0.5", "198.51.100.1, 203.0.113.9, 10.1.2.3") == "203.0.113.9"
        assert resolve_client_ip("fd00::1", "2001:db8::7") == "2001:db8::7"
        # A client cannot prepend its way in: only the rightmost untrusted hop counts.
        assert resolve_client_ip("10.0.0.5", "127.0.0.1, 203.0.113.9") == "203.0.113.9"

    def test_a_header_from_an_untrusted_peer_is_ignored(self, settings):
        settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
        assert resolve_client_ip("203.0.113.7", "10.0.0.1, 127.0.0.1") == "203.0.113.7"

    def test_garbage_in_the_header_stops_the_walk(self, settings):
        settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
        assert resolve_client_ip("10.0.0.5", "198.51.100.1, not-an-ip") == "10.0.0.5"


def _put(org, entries, **extra):
    return client(org.owner_key).put(f"{org.api}/ip_allowlist", {"entries": entries}, format="json", **extra)


def _enforce(org, on: bool, **extra):
    return client(org.owner_key).patch(
        f"{org.api}/settings", {"enforce_ip_allowlist": on}, format="json", **extra
    )


class TestTheList:
    def test_read_and_replace_in_prefects_shape(self):
        org = make_org()
        entries = [
            {"ip_network": "127.0.0.1", "enabled": True, "description": "office"},
            {"ip_network": "2001:db8::/32", "enabled": True, "description": None},
            {"ip_network": "192.168.0.0/16", "enabled": False, "description": "old vpn"},
        ]
        response = _put(org, entries)
        assert response.status_code == 200, response.content
        listed = client(org.owner_key).get(f"{org.api}/ip_allowlist").json()["entries"]
        assert [(e["ip_network"], e["enabled"]) for e in listed] == [
            ("127.0.0.1/32", True),
            ("2001:db8::/32", True),
            ("192.168.0.0/16", False),
        ]
        settings = client(org.owner_key).get(f"{org.api}/settings").json()
        assert settings["enforce_ip_allowlist"] is False
        assert AuditLogEntry.objects.filter(api_name="ip-allowlist.changed").count() == 1

    def test_bad_lists_are_422_and_change_nothing(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.1", "enabled": True}])
        too_many = [{"ip_network": f"10.0.0.{i}", "enabled": True} for i in range(26)]
        for entries in (too_many, [{"ip_network": "300.1.1.1/8"}], [{"ip_network": "10.0.0.0/33"}], "x"):
            response = _put(org, entries)
            assert response.status_code == 422, (entries, response.content)
            assert response.json()["detail"]
        assert list(IpAllowlistEntry.objects.values_list("ip_network", flat=True)) == ["127.0.0.1/32"]

    def test_plans_without_the_feature(self):
        org = make_org(plan="team")
        assert "enforce_ip_allowlist" not in client(org.owner_key).get(f"{org.api}/settings").json()
        assert _put(org, [{"ip_network": "127.0.0.1"}]).status_code == 403
        assert _enforce(org, True).status_code == 422


class TestEnforcement:
    def test_enabling_requires_the_requesters_address(self):
        org = make_org()
        _put(org, [{"ip_network": "10.1.0.0/16", "enabled": True}])
        refused = _enforce(org, True)
        assert refused.status_code == 422 and "127.0.0.1" in refused.json()["detail"]
        access = client(org.owner_key).get(f"{org.api}/ip_allowlist/my_access").json()
        assert access["allowed"] is False
        _put(org, [{"ip_network": "10.1.0.0/16"}, {"ip_network": "127.0.0.0/8"}])
        assert client(org.owner_key).get(f"{org.api}/ip_allowlist/my_access").json()["allowed"] is True
        assert _enforce(org, True).status_code == 200

    def test_every_api_surface_refuses_other_addresses(self):
        org = make_org()
        _put(
            org,
            [
                {"ip_network": "127.0.0.1"},
                {"ip_network": "2001:db8::/32"},
                {"ip_network": "10.9.0.0/16", "enabled": False},
            ],
        )
        assert _enforce(org, True).status_code == 200
        c = client(org.owner_key)
        assert c.post(f"{org.ws}/flows/filter", {}, format="json").status_code == 200
        assert (
            c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="2001:db8::5").status_code == 200
        )
        for address in ("10.9.0.1", "203.0.113.7", "2001:db9::1"):
            denied = c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR=address)
            assert denied.status_code == 403 and address in denied.json()["detail"], denied.content
            assert c.get(f"{org.api}/bots/filter", REMOTE_ADDR=address).status_code in (403, 405)
            assert c.post(f"{org.api}/bots/filter", {}, format="json", REMOTE_ADDR=address).status_code == 403
        # A spoofed header from an untrusted peer changes nothing.
        spoofed = c.post(
            f"{org.ws}/flows/filter",
            {},
            format="json",
            REMOTE_ADDR="203.0.113.7",
            HTTP_X_FORWARDED_FOR="127.0.0.1",
        )
        assert spoofed.status_code == 403
        # The event websockets: the same decision.
        ok = authorize_sync(
            token=org.owner_key,
            account_ref=str(org.account.id),
            workspace_ref=str(org.workspace.id),
            scopes=("see_events",),
            ip="127.0.0.1",
        )
        refused = authorize_sync(
            token=org.owner_key,
            account_ref=str(org.account.id),
            workspace_ref=str(org.workspace.id),
            scopes=("see_events",),
            ip="203.0.113.7",
        )
        assert ok is not None and refused is None

    def test_a_stranger_still_gets_404_not_403(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.1"}])
        _enforce(org, True)
        other = make_org()
        response = client(other.owner_key).post(
            f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="203.0.113.7"
        )
        assert response.status_code == 404

    def test_denials_are_audited_at_most_once_a_minute_per_address(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.1"}])
        _enforce(org, True)
        c = client(org.owner_key)
        for _ in range(20):
            c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="203.0.113.7")
        c.post(f"{org.ws}/flows/filter", {}, format="json", REMOTE_ADDR="203.0.113.8")
        denials = AuditLogEntry.objects.filter(api_name="request.access-denied.ip-allowlist")
        assert sorted(e.payload["ip"] for e in denials) == ["203.0.113.7", "203.0.113.8"]

    def test_a_change_that_would_lock_the_requester_out_is_refused(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.1"}, {"ip_network": "10.0.0.0/8"}])
        _enforce(org, True)
        response = _put(org, [{"ip_network": "10.0.0.0/8"}])
        assert response.status_code == 422 and "127.0.0.1" in response.json()["detail"]
        assert IpAllowlistEntry.objects.count() == 2
        # Disabling the requester's own entry locks out the same way.
        assert (
            _put(
                org, [{"ip_network": "127.0.0.1", "enabled": False}, {"ip_network": "10.0.0.0/8"}]
            ).status_code
            == 422
        )

    def test_last_seen_is_stamped(self):
        org = make_org()
        _put(org, [{"ip_network": "127.0.0.0/8"}])
        _enforce(org, True)
        client(org.owner_key).post(f"{org.ws}/flows/filter", {}, format="json")
        assert IpAllowlistEntry.objects.get().last_seen is not None


class TestDryRun:
    def test_members_and_keys_seen_elsewhere_are_listed(self):
        org = make_org()
        person, _ = add_member(org)
        ApiKey.objects.filter(user=person).update(last_used_at=timezone.now(), last_used_ip="198.51.100.4")
        ApiKey.objects.filter(user=org.owner).update(
            last_used_at=timezone.now() - dt.timedelta(days=40), last_used_ip="198.51.100.5"
        )
        result = client(org.owner_key).post(
            f"{org.api}/ip_allowlist/dry_run", {"entries": [{"ip_network": "127.0.0.1"}]}, format="json"
        )
        assert result.status_code == 200, result.content
        blocked = {(b["type"], b["name"]): b["blocked_ips"] for b in result.json()["would_block"]}
        assert blocked == {("user", person.email): ["198.51.100.4"]}
        assert not IpAllowlistEntry.objects.exists()


def test_the_console_hides_accounts_the_address_may_not_reach():
    from django.test import Client

    org = make_org()
    _put(org, [{"ip_network": "127.0.0.1"}])
    _enforce(org, True)
    browser = Client(REMOTE_ADDR="203.0.113.7")
    browser.force_login(org.owner)
    page = browser.get("/").content.decode()
    assert "203.0.113.7" in page and org.workspace.handle not in page
    assert AuditLogEntry.objects.filter(api_name="request.access-denied.ip-allowlist").exists()
    allowed = Client()
    allowed.force_login(org.owner)
    assert org.workspace.handle in allowed.get("/").content.decode()
