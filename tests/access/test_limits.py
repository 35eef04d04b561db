"""Rate limits by plan (``access.limits``), the body cap, and the throttles of the doors credentials
are guessed at (``accounts.throttles``).

On SQLite the counters are the process's; with ``REDIS_URL`` (CI's PostgreSQL + Redis run) they are
Redis's, and ``TestSharedCounters`` proves two limiters (two processes) share one count."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings as django_settings

from accounts import throttles
from accounts.models import ScimToken
from accounts.rbac import invitation_create
from accounts.services import user_create
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from billing.plans import PLANS
from core import ratelimit
from tests.conftest import bearer, make_tenant

pytestmark = pytest.mark.django_db

# Hobby's 625 requests and 2,000 logs + events a minute, scaled down to 5 and 16.
SCALE = 0.008


@pytest.fixture(autouse=True)
def _fresh_counters():
    ratelimit.reset()
    throttles.reset_memory()
    yield
    ratelimit.reset()
    throttles.reset_memory()


@pytest.fixture
def limited(settings):
    settings.RATE_LIMIT_SCALE = SCALE
    return settings


def _filter(client, tenant):
    return client.post(f"{tenant.prefix}/flows/filter", {}, format="json")


def _wait_for_fresh_window(window: int, needed: float) -> None:
    """Sleep into a new window when fewer than ``needed`` seconds of this one are left."""
    left = window - (time.time() % window)
    if left < needed:
        time.sleep(left + 0.05)


class TestPlanRateLimits:
    def test_plans_carry_prefect_clouds_two_buckets_and_retention(self):
        assert (PLANS["hobby"].api_requests_per_minute, PLANS["hobby"].logs_events_per_minute) == (625, 2000)
        assert (PLANS["team"].api_requests_per_minute, PLANS["team"].logs_events_per_minute) == (2500, 8000)
        assert [PLANS[k].run_retention_days for k in ("hobby", "starter", "team")] == [7, 7, 14]

    def test_api_requests_past_the_plans_limit_answer_429_with_retry_after(self, limited, api_client):
        _wait_for_fresh_window(60, 5)
        tenant, other = make_tenant(plan="hobby"), make_tenant(plan="hobby")
        bearer(api_client, tenant.member_key)
        assert [_filter(api_client, tenant).status_code for _ in range(5)] == [200] * 5
        refused = _filter(api_client, tenant)
        assert refused.status_code == 429
        assert 1 <= int(refused["Retry-After"]) <= 60
        assert set(refused.json()) == {"detail"}  # Prefect's error shape
        # Every key of the account shares the account's bucket; another account has its own.
        bearer(api_client, tenant.service_key)
        assert _filter(api_client, tenant).status_code == 429
        bearer(api_client, other.member_key)
        assert _filter(api_client, other).status_code == 200

    def test_a_bigger_plan_has_a_bigger_limit(self, limited, api_client):
        _wait_for_fresh_window(60, 5)
        tenant = make_tenant(plan="team")  # 2,500 x 0.008 = 20
        bearer(api_client, tenant.member_key)
        assert all(_filter(api_client, tenant).status_code == 200 for _ in range(20))
        assert _filter(api_client, tenant).status_code == 429

    def test_each_log_counts_against_the_logs_and_events_bucket(self, limited, api_client):
        _wait_for_fresh_window(60, 5)
        tenant = make_tenant(plan="hobby")  # 16 logs + events a minute
        bearer(api_client, tenant.member_key)
        log = {"name": "x", "level": 20, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}
        assert api_client.post(f"{tenant.prefix}/logs/", [log] * 10, format="json").status_code == 201
        refused = api_client.post(f"{tenant.prefix}/logs/", [log] * 10, format="json")
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        # Logs are not API requests: that bucket is untouched.
        assert _filter(api_client, tenant).status_code == 200

    def test_a_batch_larger_than_the_minute_costs_the_whole_minute(self, limited, api_client):
        _wait_for_fresh_window(60, 5)
        tenant = make_tenant(plan="hobby")  # 16 logs + events a minute
        bearer(api_client, tenant.member_key)
        log = {"name": "x", "level": 20, "message": "m", "timestamp": "2026-01-01T00:00:00Z"}
        # 40 logs never fit in 16: taken once in a fresh minute rather than refused for ever.
        assert api_client.post(f"{tenant.prefix}/logs/", [log] * 40, format="json").status_code == 201
        assert api_client.post(f"{tenant.prefix}/logs/", [log], format="json").status_code == 429

    def test_off_when_the_scale_is_zero(self, settings, api_client):
        settings.RATE_LIMIT_SCALE = 0
        tenant = make_tenant(plan="hobby")
        bearer(api_client, tenant.member_key)
        assert all(_filter(api_client, tenant).status_code == 200 for _ in range(10))


class TestLimiter:
    def test_a_window_counts_and_turns(self):
        limiter = ratelimit.Limiter(None)
        now = 16_667 * 60 + 20.0  # 20 s into a minute
        verdicts = [limiter.charge("k", limit=3, now=now).allowed for _ in range(4)]
        assert verdicts == [True, True, True, False]
        assert limiter.charge("k", limit=3, now=now).retry_after == 40
        assert limiter.charge("k", limit=3, now=now + 40).allowed  # the next minute

    def test_an_amount_larger_than_the_rest_is_refused(self):
        limiter = ratelimit.Limiter(None)
        assert limiter.charge("k", limit=10, amount=8, now=0.0).allowed
        assert not limiter.charge("k", limit=10, amount=3, now=0.0).allowed


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL (CI's Redis run)")
class TestSharedCounters:
    def test_two_processes_share_one_count_with_batched_reservations(self):
        key = f"test-shared-{time.time_ns()}"
        first, second = (
            ratelimit.Limiter(django_settings.REDIS_URL),
            ratelimit.Limiter(django_settings.REDIS_URL),
        )
        assert first.shared and second.shared
        now = time.time()
        allowed = 0
        for _ in range(20):
            for limiter in (first, second):
                allowed += limiter.charge(key, limit=25, batch=4, now=now).allowed
        # Never more than the limit across both; at most a batch less than it per process.
        assert 25 - 2 * 3 <= allowed <= 25
        # The batch is spent from memory: a round trip once every 4 requests.
        assert first.charge_from_memory(f"{key}-new", limit=100) is None

    def test_redis_down_lets_requests_through(self):
        limiter = ratelimit.Limiter("redis://127.0.0.1:1/0")
        assert limiter.charge("k", limit=1).allowed and limiter.charge("k", limit=1).allowed


class TestBodyLimit:
    def test_the_cap_is_5_mib_and_over_it_answers_413_in_prefects_shape(self, api_client, tenant):
        assert django_settings.HTTP_MAX_BODY_BYTES == 5 * 1024 * 1024
        bearer(api_client, tenant.member_key)
        body = json.dumps({"name": "x" * (5 * 1024 * 1024)})
        response = api_client.post(f"{tenant.prefix}/flows/", body, content_type="application/json")
        assert response.status_code == 413
        assert set(response.json()) == {"detail"}
        # Just under the cap is read and judged as usual (a 201 for a flow with a long name is not
        # the point: anything but 413 and 400).
        under = json.dumps({"name": "y" * (4 * 1024 * 1024)})
        answered = api_client.post(f"{tenant.prefix}/flows/", under, content_type="application/json")
        assert answered.status_code not in (400, 413)

    def test_every_route_answers_413_even_without_credentials(self, client, db):
        big = b"x" * (5 * 1024 * 1024 + 1)
        for path in ("/api/me", "/login/", "/scim/v2/accounts/x/Users", "/api/invitations/x/accept"):
            response = client.post(path, big, content_type="application/json")
            assert response.status_code == 413, path


def _throttled(settings, failures: int = 3, window: int = 60):
    settings.AUTH_THROTTLE_FAILURES = failures
    settings.AUTH_THROTTLE_WINDOW_SECONDS = window


def _throttle_events():
    return list(AuditLogEntry.objects.filter(api_name="auth.throttled").order_by("sequence"))


class TestThrottles:
    def test_password_sign_in_per_address(self, settings, client):
        _throttled(settings)
        _wait_for_fresh_window(60, 10)
        user_create(email="p@example.test", password="a long enough password")
        wrong = {"username": "p@example.test", "password": "nope"}
        assert client.post("/login/", wrong, REMOTE_ADDR="198.51.100.1").status_code == 200
        assert client.post("/login/", wrong, REMOTE_ADDR="198.51.100.1").status_code == 200
        third = client.post("/login/", wrong, REMOTE_ADDR="198.51.100.1")
        assert third.status_code == 429 and int(third["Retry-After"]) >= 1
        right = {"username": "p@example.test", "password": "a long enough password"}
        # The address is refused, even with the right password...
        assert client.post("/login/", right, REMOTE_ADDR="198.51.100.1").status_code == 429
        # ...but the right password from another address signs in.
        assert client.post("/login/", right, REMOTE_ADDR="198.51.100.2").status_code == 302
        (event,) = _throttle_events()  # once a window, however many refusals
        assert event.payload["door"] == "sign-in" and event.payload["scope"] == "address"

    def test_password_sign_in_per_person_lasts_one_window(self, settings, client):
        _throttled(settings, failures=2, window=2)
        _wait_for_fresh_window(2, 1.5)
        user_create(email="q@example.test", password="a long enough password")
        wrong = {"username": "q@example.test", "password": "nope"}
        answers = [
            client.post("/login/", wrong, REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(10)
        ]
        assert answers[-1] == 429 and 429 not in answers[:9]  # 10 = 2 x 5 per person
        right = {"username": "q@example.test", "password": "a long enough password"}
        assert client.post("/login/", right, REMOTE_ADDR="198.51.100.77").status_code == 429
        _wait_for_fresh_window(2, 2)
        assert client.post("/login/", right, REMOTE_ADDR="198.51.100.77").status_code == 302
        assert [e.payload["scope"] for e in _throttle_events()] == ["account"]

    def test_api_key_failures_per_address(self, settings, api_client, tenant):
        _throttled(settings)
        _wait_for_fresh_window(60, 10)
        url = f"{tenant.prefix}/flows/filter"
        bad = {"HTTP_AUTHORIZATION": "Bearer pnu_wrong", "REMOTE_ADDR": "198.51.100.5"}
        assert [api_client.post(url, {}, format="json", **bad).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        good = {"HTTP_AUTHORIZATION": f"Bearer {tenant.member_key}"}
        refused = api_client.post(url, {}, format="json", REMOTE_ADDR="198.51.100.5", **good)
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert api_client.post(url, {}, format="json", REMOTE_ADDR="198.51.100.6", **good).status_code == 200
        (event,) = _throttle_events()
        assert event.payload["door"] == "api-key" and event.account_ref == tenant.account.pk

    def test_api_key_failures_per_account_never_refuse_a_valid_key(self, settings, api_client, tenant):
        _throttled(settings, failures=1)
        _wait_for_fresh_window(60, 10)
        url = f"{tenant.prefix}/flows/filter"
        for i in range(5):
            api_client.post(
                url, {}, format="json", HTTP_AUTHORIZATION="Bearer x", REMOTE_ADDR=f"198.51.100.{i}"
            )
        # The account's counter is past its limit (5): failures answer 429, a valid key still works.
        assert (
            api_client.post(
                url, {}, format="json", HTTP_AUTHORIZATION="Bearer x", REMOTE_ADDR="198.51.100.50"
            )
        ).status_code == 429
        good = {"HTTP_AUTHORIZATION": f"Bearer {tenant.member_key}", "REMOTE_ADDR": "198.51.100.51"}
        assert api_client.post(url, {}, format="json", **good).status_code == 200

    def test_scim_token_failures(self, settings, client):
        _throttled(settings)
        _wait_for_fresh_window(60, 10)
        tenant = make_tenant(plan="enterprise")
        url = f"/scim/v2/accounts/{tenant.account.id}/Users"
        answers = [
            client.get(url, HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR="198.51.100.9").status_code
            for _ in range(3)
        ]
        assert answers == [401, 401, 429]
        assert ScimToken.objects.count() == 0
        (event,) = _throttle_events()
        assert event.payload["door"] == "scim" and event.account_ref == tenant.account.pk

    def test_invitation_acceptance(self, settings, api_client):
        _throttled(settings)
        _wait_for_fresh_window(60, 10)
        tenant = make_tenant(plan="enterprise")
        invitation, _token = invitation_create(account=tenant.account, email="new@example.test", actor=SYSTEM)
        url = f"/api/invitations/{invitation.pk}/accept"
        body = {"token": "wrong", "password": "a long enough password"}
        answers = [
            api_client.post(url, body, format="json", REMOTE_ADDR="198.51.100.3").status_code
            for _ in range(3)
        ]
        assert answers == [404, 404, 429]
        assert len(_throttle_events()) == 1
