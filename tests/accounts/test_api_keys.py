"""API keys: format, authentication, failure modes, storage."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from accounts.api_keys import secrets as key_secrets
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create, api_key_revoke
from audit.actors import SYSTEM
from audit.models import AuditLogEntry
from core.errors import InvalidInput
from tests.conftest import bearer

GENERIC_401 = {"detail": "Invalid authentication credentials"}


def _get(api_client, tenant, key: str | None = None, header: str | None = None):
    if header is not None:
        api_client.credentials(HTTP_AUTHORIZATION=header)
    elif key is not None:
        bearer(api_client, key)
    return api_client.get(f"{tenant.prefix}/health")


@pytest.mark.django_db
class TestKeyFormat:
    def test_prefixes_and_entropy(self, tenant):
        assert tenant.member_key.startswith("pnu_")
        assert tenant.service_key.startswith("pnb_")
        parsed = key_secrets.parse(tenant.service_key)
        assert parsed is not None
        # 44 base62 characters of secret: > 256 bits.
        assert key_secrets.SECRET_LENGTH * 5.954 > 256

    def test_keys_are_unique(self):
        keys = {key_secrets.mint("pnb")[0] for _ in range(200)}
        assert len(keys) == 200

    def test_only_a_hash_is_stored(self, tenant):
        key = ApiKey.objects.get(service_account=tenant.service_account)
        assert key.secret_hash == key_secrets.hash_key(tenant.service_key)
        assert tenant.service_key not in key.display
        assert key.display == f"pnb_{key.lookup_id}…"

    def test_the_secret_appears_nowhere_in_the_database(self, tenant, api_client):
        # Use the keys once so every write path (last used, audit) has run.
        assert _get(api_client, tenant, tenant.service_key).status_code == 200
        assert _get(api_client, tenant, tenant.member_key).status_code == 200
        secrets = []
        for plaintext in (tenant.service_key, tenant.member_key):
            parsed = key_secrets.parse(plaintext)
            secrets += [plaintext, plaintext[len("pnb_") + key_secrets.LOOKUP_LENGTH :]]
        dump = []
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names():
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
                dump.extend(repr(row) for row in cursor.fetchall())
        text = "\n".join(dump)
        assert parsed.lookup_id in text  # the dump really covers the key table
        for secret in secrets:
            assert secret not in text


@pytest.mark.django_db
class TestAuthentication:
    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
    def test_valid_keys_with_any_scheme_case(self, api_client, tenant, scheme):
        for key in (tenant.service_key, tenant.member_key):
            response = _get(api_client, tenant, header=f"{scheme} {key}")
            assert response.status_code == 200, response.content

    def test_use_is_recorded(self, api_client, tenant):
        _get(api_client, tenant, tenant.service_key)
        key = ApiKey.objects.get(service_account=tenant.service_account)
        assert key.last_used_at is not None
        assert key.last_used_ip == "127.0.0.1"

    def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(self, api_client, tenant, settings):
        api_client.get(
            f"{tenant.prefix}/health",
            HTTP_AUTHORIZATION=f"Bearer {tenant.service_key}",
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        )
        assert ApiKey.objects.get(service_account=tenant.service_account).last_used_ip == "127.0.0.1"
        settings.TRUSTED_PROXY_COUNT = 1
        api_client.get(
            f"{tenant.prefix}/health",
            HTTP_AUTHORIZATION=f"Bearer {tenant.service_key}",
            HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9",
        )
        assert ApiKey.objects.get(service_account=tenant.service_account).last_used_ip == "203.0.113.9"

    @pytest.mark.parametrize(
        "make_header",
        [
            pytest.param(lambda t: f"Bearer pnx_{t.service_key[4:]}", id="wrong-prefix"),
            pytest.param(lambda t: f"Bearer {t.service_key.replace('pnb_', 'pnu_')}", id="swapped-prefix"),
            pytest.param(lambda t: f"Bearer {t.service_key[:-1]}", id="truncated"),
            pytest.param(lambda t: f"Bearer {t.service_key}x", id="too-long"),
            pytest.param(lambda t: "Bearer not-a-key", id="malformed"),
            pytest.param(lambda t: "Bearer ", id="empty"),
            pytest.param(lambda t: f"Bearer {key_secrets.mint('pnb')[0]}", id="unknown"),
            pytest.param(lambda t: f"Bearer {t.service_key[:-4]}AAAA", id="wrong-secret"),
        ],
    )
    def test_bad_keys_all_answer_the_same_401(self, api_client, tenant, make_header):
        response = _get(api_client, tenant, header=make_header(tenant))
        assert response.status_code == 401
        assert response.json() == GENERIC_401

    def test_missing_credentials_answer_the_same_401(self, api_client, tenant):
        response = _get(api_client, tenant)
        assert response.status_code == 401
        assert response.json() == GENERIC_401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_expired_key(self, api_client, tenant):
        key, plaintext = api_key_create(
            owner=tenant.service_account,
            name="short",
            actor=SYSTEM,
            expires_at=timezone.now() + timedelta(hours=1),
        )
        assert _get(api_client, tenant, plaintext).status_code == 200
        # Two hours later: the key is remembered from the first call, and refused all the same.
        later = timezone.now() + timedelta(hours=2)
        with mock.patch("django.utils.timezone.now", return_value=later):
            response = _get(api_client, tenant, plaintext)
        assert (response.status_code, response.json()) == (401, GENERIC_401)

    def test_revoked_key(self, api_client, tenant):
        key = ApiKey.objects.get(service_account=tenant.service_account)
        api_key_revoke(key=key, actor=SYSTEM)
        response = _get(api_client, tenant, tenant.service_key)
        assert (response.status_code, response.json()) == (401, GENERIC_401)

    def test_deactivated_user_key(self, api_client, tenant):
        tenant.member.is_active = False
        tenant.member.save()
        response = _get(api_client, tenant, tenant.member_key)
        assert (response.status_code, response.json()) == (401, GENERIC_401)

    def test_deleted_service_account_key(self, api_client, tenant):
        from accounts.services import service_account_delete

        service_account_delete(service_account=tenant.service_account, actor=SYSTEM)
        response = _get(api_client, tenant, tenant.service_key)
        assert (response.status_code, response.json()) == (401, GENERIC_401)

    def test_another_tenants_key_is_404_not_401(self, api_client, two_workspaces):
        a, b = two_workspaces
        response = bearer(api_client, a.service_key).get(f"{b.prefix}/health")
        assert response.status_code == 404


@pytest.mark.django_db
class TestLifecycle:
    def test_create_and_revoke_are_audited(self, tenant):
        key, _ = api_key_create(owner=tenant.service_account, name="ci", actor=tenant.member)
        api_key_revoke(key=key, actor=tenant.member)
        entries = AuditLogEntry.objects.filter(target_id=str(key.pk)).order_by("occurred")
        assert [e.api_name for e in entries] == ["api-key.created", "api-key.revoked"]
        assert all(e.account_id == tenant.account.id for e in entries)
        assert all(e.actor_user_id == tenant.member.id for e in entries)

    def test_an_expiry_in_the_past_is_refused(self, tenant):
        with pytest.raises(InvalidInput):
            api_key_create(owner=tenant.service_account, name="x", actor=SYSTEM, expires_at=timezone.now())

    def test_revoking_twice_is_a_conflict(self, tenant):
        from core.errors import Conflict

        key = ApiKey.objects.get(service_account=tenant.service_account)
        api_key_revoke(key=key, actor=SYSTEM)
        with pytest.raises(Conflict):
            api_key_revoke(key=key, actor=SYSTEM)
