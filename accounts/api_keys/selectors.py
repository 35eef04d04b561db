"""Reading keys: authentication and listings."""

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


def api_key_authenticate(
    candidate: str, *, ip: str | None = None, account_ref: str | None = None
) -> ApiKey | None:
    """The usable key for ``candidate``, or None for malformed, unknown, expired or revoked keys and
    for keys whose owner can no longer act. Records the use; ``account_ref`` (the account the
    request acts in, when the path names one) is where a user key's use from a new address is an
    audit event."""
    parsed = key_secrets.parse(candidate)
    if parsed is None:
        return None
    key = authcache.memo("api-key", (authcache.token_digest(parsed.raw),), lambda: _matching_key(parsed))
    if key is None:
        return None
    now = timezone.now()
    if not _can_act(key, now):
        return None
    if _use_to_record(key, now, ip):
        new_ip = key.last_used_ip is not None and ip is not None and not _same_ip(key.last_used_ip, ip)
        previous_ip = key.last_used_ip
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip
        if new_ip:
            _record_new_ip(key, previous_ip=previous_ip, ip=ip, account_ref=account_ref)
    return key


def api_key_remembered(candidate: str, *, ip: str | None) -> ApiKey | None:
    """``api_key_authenticate`` answered from memory alone: the key when it is remembered, usable
    and its use needs no recording now; None when the full path must decide (it may still accept)."""
    parsed = key_secrets.parse(candidate)
    if parsed is None:
        return None
    key = authcache.peek("api-key", (authcache.token_digest(parsed.raw),))
    if key is authcache.MISSING or key is None:
        return None
    now = timezone.now()
    if not _can_act(key, now) or _use_to_record(key, now, ip):
        return None
    return key


def _can_act(key: ApiKey, now) -> bool:
    """Unexpired, unrevoked, and its owner still active."""
    return key.is_usable(now) and (key.user is None or key.user.is_active)


def _use_to_record(key: ApiKey, now, ip: str | None) -> bool:
    """Is this use to be written down (``last_used_at`` is stale, or the address is new)?"""
    return (
        key.last_used_at is None
        or now - key.last_used_at >= LAST_USED_RESOLUTION
        or not _same_ip(key.last_used_ip, ip)
    )


def _same_ip(stored: str | None, ip: str | None) -> bool:
    """Whether two spellings name one address (the database may spell it otherwise: ::1.2.3.4, or an
    IPv4-mapped form of an IPv4 address)."""
    if stored is None or ip is None:
        return stored == ip
    return (canonical_ip(stored) or stored) == (canonical_ip(ip) or ip)


def _record_new_ip(key: ApiKey, *, previous_ip: str, ip: str, account_ref: str | None) -> None:
    """A key used from an address it was not last used from is an audit event (a leaked key shows
    up here): in the service account's account, or for a user key in the account the request acts
    in when its owner belongs to it (else in the trail of no account)."""
    from accounts.models import AccountMembership
    from audit import events
    from audit.services import audit_record
    from tenants.selectors import resolve_account

    if key.service_account_id:
        account = key.service_account.account
    else:
        account = resolve_account(account_ref) if account_ref else None
        if (
            account is not None
            and not AccountMembership.objects.filter(account=account, user=key.user).exists()
        ):
            account = None
    audit_record(
        event=events.API_KEY_NEW_IP,
        actor=key.owner,
        account=account,
        target=key,
        payload={"ip": ip, "previous_ip": previous_ip},
    )


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
