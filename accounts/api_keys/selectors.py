"""Reading keys: finding the key a credential names, and listings. Nothing here writes."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from accounts import authcache
from accounts.api_keys import secrets as key_secrets
from accounts.api_keys.models import ApiKey
from audit.context import canonical_ip

# last_used_at is written at most this often per key, so a busy worker does not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def api_key_find(candidate: str) -> ApiKey | None:
    """The key ``candidate`` names when it is well formed, known and its secret matches; None
    otherwise. Reads only (remembered like access, see ``accounts.authcache``); whether the key may
    act now is ``api_key_can_act``, and recording its use is ``api_key_record_use``'s."""
    parsed = key_secrets.parse(candidate)
    if parsed is None:
        return None
    return authcache.memo("api-key", (authcache.token_digest(parsed.raw),), lambda: _matching_key(parsed))


def api_key_find_remembered(candidate: str) -> ApiKey | None | object:
    """``api_key_find`` answered from memory alone: the key or None when remembered, else
    ``authcache.MISSING``."""
    parsed = key_secrets.parse(candidate)
    if parsed is None:
        return None
    return authcache.peek("api-key", (authcache.token_digest(parsed.raw),))


def api_key_can_act(key: ApiKey, now) -> bool:
    """Unexpired, unrevoked, and its owner still active."""
    return key.is_usable(now) and (key.user is None or key.user.is_active)


def api_key_use_due(key: ApiKey, now, ip: str | None) -> bool:
    """Is this use to be written down (``last_used_at`` is stale, or the address is new)?"""
    return (
        key.last_used_at is None
        or now - key.last_used_at >= LAST_USED_RESOLUTION
        or not same_ip(key.last_used_ip, ip)
    )


def same_ip(stored: str | None, ip: str | None) -> bool:
    """Whether two spellings name one address (the database may spell it otherwise: ::1.2.3.4, or an
    IPv4-mapped form of an IPv4 address)."""
    if stored is None or ip is None:
        return stored == ip
    return (canonical_ip(stored) or stored) == (canonical_ip(ip) or ip)


def _matching_key(parsed) -> ApiKey | None:
    key = (
        ApiKey.objects.select_related("user", "service_account", "service_account__account")
        .filter(lookup_id=parsed.lookup_id, prefix=parsed.prefix)
        .first()
    )
    if key is None or not key_secrets.matches(parsed.raw, key.secret_hash):
        return None
    return key


def api_key_list(*, user=None, service_account=None):
    qs = ApiKey.objects.all()
    if user is not None:
        qs = qs.filter(user=user)
    if service_account is not None:
        qs = qs.filter(service_account=service_account)
    return qs


def user_api_key_list(*, user, name: str | None = None):
    """The person's keys that are not revoked, newest first (only those named ``name``, if given)."""
    keys = ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created")
    if name:
        keys = keys.filter(name=name)
    return keys


def user_api_key_get(*, user, key_id) -> ApiKey | None:
    return ApiKey.objects.filter(user=user, pk=key_id, revoked_at__isnull=True).first()


def service_account_newest_keys(service_accounts) -> dict:
    """The newest usable key of each service account, by its id, in one query."""
    now = timezone.now()
    keys = (
        ApiKey.objects.filter(service_account__in=list(service_accounts), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("service_account_id", "-created")
    )
    newest: dict = {}
    for key in keys:
        newest.setdefault(key.service_account_id, key)
    return newest
