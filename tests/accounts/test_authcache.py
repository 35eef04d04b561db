"""The memo of a key's identity and workspace access: it saves the queries, and it never serves a
revoked key, a removed grant or a deactivated user, in this process or (through the shared
generation) in any other."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import authcache
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_revoke
from accounts.services import workspace_access_revoke
from audit.actors import SYSTEM
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _health(client, tenant):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"{tenant.prefix}/health")
    return response.status_code, [q["sql"] for q in ctx.captured_queries]


def _auth_queries(queries):
    tables = ("accounts_apikey", "tenants_account", "tenants_workspace", "accounts_workspacerolegrant")
    return [sql for sql in queries if any(f'FROM "{table}"' in sql for table in tables)]


def test_a_second_call_with_the_same_key_reads_no_auth_rows(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    first_status, first = _health(client, tenant)
    second_status, second = _health(client, tenant)
    assert (first_status, second_status) == (200, 200)
    assert len(_auth_queries(first)) >= 3
    assert _auth_queries(second) == []


def test_no_memo_when_disabled(api_client, tenant, settings):
    settings.AUTH_CACHE_SECONDS = 0
    client = bearer(api_client, tenant.service_key)
    _health(client, tenant)
    assert len(_auth_queries(_health(client, tenant)[1])) >= 3


def test_a_revoked_key_is_refused_on_the_next_call(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    assert _health(client, tenant)[0] == 200
    api_key_revoke(key=ApiKey.objects.get(service_account=tenant.service_account), actor=SYSTEM)
    assert _health(client, tenant)[0] == 401


def test_a_removed_grant_is_refused_on_the_next_call(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    assert _health(client, tenant)[0] == 200
    workspace_access_revoke(workspace=tenant.workspace, principal=tenant.service_account, actor=SYSTEM)
    assert _health(client, tenant)[0] == 404


def test_a_deactivated_user_is_refused_on_the_next_call(api_client, tenant):
    client = bearer(api_client, tenant.member_key)
    assert _health(client, tenant)[0] == 200
    tenant.member.is_active = False
    tenant.member.save(update_fields=["is_active"])
    assert _health(client, tenant)[0] == 401


def test_a_change_announced_by_another_process_drops_the_memo(api_client, tenant, monkeypatch):
    """Another process's change reaches this one only through the shared generation (read at most
    once per interval; here on every lookup)."""
    monkeypatch.setattr(authcache, "SHARED_GENERATION_INTERVAL", 0.0)
    client = bearer(api_client, tenant.service_key)
    _health(client, tenant)
    assert _auth_queries(_health(client, tenant)[1]) == []
    cache.incr(authcache._GENERATION_KEY)  # what _bump() does elsewhere, without the local half
    assert len(_auth_queries(_health(client, tenant)[1])) >= 3


def test_the_shared_generation_is_read_at_most_once_per_interval(api_client, tenant, monkeypatch):
    client = bearer(api_client, tenant.service_key)
    _health(client, tenant)
    reads = []
    original = authcache._shared_generation
    monkeypatch.setattr(authcache, "_shared_generation", lambda: reads.append(1) or original())
    for _ in range(5):
        assert _health(client, tenant)[0] == 200
    assert reads == []
    monkeypatch.setattr(authcache, "SHARED_GENERATION_INTERVAL", 0.0)
    _health(client, tenant)
    assert reads


def test_a_cache_that_fails_is_not_asked_again_within_the_interval(api_client, tenant, monkeypatch):
    """A Redis that does not answer costs one request its timeout, not every request: until the
    interval has passed the others read the database without asking the cache."""
    client = bearer(api_client, tenant.service_key)
    reads = []

    def failing_get(*args, **kwargs):
        reads.append(1)
        raise ConnectionError("the cache does not answer")

    monkeypatch.setattr(cache, "get", failing_get)
    monkeypatch.setattr(authcache, "_shared_seen", (float("-inf"), None))
    for _ in range(4):
        status, queries = _health(client, tenant)
        assert status == 200
        assert _auth_queries(queries), "nothing may be served from memory while the cache is down"
    first = len(reads)
    assert first, "the cache was not asked"
    for _ in range(3):
        assert _health(client, tenant)[0] == 200
    assert len(reads) == first
    monkeypatch.setattr(authcache, "SHARED_GENERATION_INTERVAL", 0.0)
    assert _health(client, tenant)[0] == 200
    assert len(reads) > first


def test_a_wrong_secret_with_a_known_lookup_id_is_not_served_from_the_memo(api_client, tenant):
    client = bearer(api_client, tenant.service_key)
    assert _health(client, tenant)[0] == 200
    forged = tenant.service_key[:-4] + ("AAAA" if not tenant.service_key.endswith("AAAA") else "BBBB")
    assert _health(bearer(api_client, forged), tenant)[0] == 401
