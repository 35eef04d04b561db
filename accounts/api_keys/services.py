"""Creating and revoking keys. The plaintext is returned once, by ``api_key_create``, and never
stored."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.api_keys import secrets as key_secrets
from accounts.api_keys.models import ApiKey, ApiKeyPrefix
from accounts.api_keys.selectors import same_ip
from accounts.models import AccountMembership, ServiceAccount, User
from accounts.permissions import SCOPES_BY_NAME
from audit import events
from audit.services import audit_record
from core.errors import Conflict, InvalidInput
from tenants.models import Account
from tenants.selectors import resolve_account

MAX_NAME_LENGTH = 200


def max_key_lifetime_seconds(owner: User | ServiceAccount) -> int | None:
    """The longest lifetime a new key of ``owner`` may have: its account's setting for a service
    account; for a person, the strictest setting among the accounts they belong to."""
    if isinstance(owner, ServiceAccount):
        accounts = [owner.account]
    else:
        accounts = Account.objects.filter(memberships__user=owner)
    limits = [
        int(limit)
        for account in accounts
        if (limit := (account.settings or {}).get("max_api_key_lifetime_seconds")) is not None
    ]
    return min(limits) if limits else None


def _check_expiry(owner, expires_at: datetime | None) -> None:
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("An API key's expiry must be in the future.", code="invalid_expiration")
    limit = max_key_lifetime_seconds(owner)
    if limit is not None and (expires_at is None or expires_at > now + timedelta(seconds=limit)):
        raise InvalidInput(
            f"The account allows API keys to live at most {limit} seconds: give an expiration no later "
            f"than {(now + timedelta(seconds=limit)).isoformat()}.",
            code="key_lifetime_exceeded",
        )


def _check_scopes(scopes) -> list[str] | None:
    if scopes is None:
        return None
    unknown = sorted({str(name) for name in scopes} - set(SCOPES_BY_NAME))
    if unknown:
        raise InvalidInput(f"Unknown workspace scope(s): {', '.join(unknown)}.", code="unknown_scope")
    return sorted(set(scopes))


def api_key_create(
    *,
    owner: User | ServiceAccount,
    name: str,
    actor,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``owner``: ``(key, plaintext)``. Show the plaintext once; only its hash is kept.
    ``scopes`` narrows the key to some workspace scopes (it never holds more than its owner); the
    owner's accounts may cap a key's lifetime."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"An API key needs a name of 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name"
        )
    scopes = _check_scopes(scopes)
    if isinstance(owner, User | ServiceAccount):
        _check_expiry(owner, expires_at)
    if isinstance(owner, ServiceAccount):
        prefix, owner_fields, account = (
            ApiKeyPrefix.SERVICE_ACCOUNT,
            {"service_account": owner},
            owner.account,
        )
    elif isinstance(owner, User):
        if not owner.is_active:
            raise InvalidInput("A deactivated user cannot hold API keys.", code="inactive_user")
        prefix, owner_fields, account = ApiKeyPrefix.USER, {"user": owner}, None
    else:
        raise InvalidInput("An API key belongs to a user or a service account.")
    plaintext, lookup_id, secret_hash = key_secrets.mint(prefix.value)
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name,
            prefix=prefix,
            lookup_id=lookup_id,
            secret_hash=secret_hash,
            expires_at=expires_at,
            scopes=scopes,
            created_by=actor if isinstance(actor, User) else None,
            **owner_fields,
        )
        audit_record(
            event=events.API_KEY_CREATED,
            actor=actor,
            account=account,
            target=key,
            payload={
                "prefix": prefix.value,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "scopes": scopes,
            },
        )
    return key, plaintext


def api_key_revoke(*, key: ApiKey, actor) -> ApiKey:
    with transaction.atomic():
        key = (
            ApiKey.objects.select_for_update(of=("self",))
            .select_related("service_account__account")
            .get(pk=key.pk)
        )
        if key.revoked_at is not None:
            raise Conflict("This API key is already revoked.", code="already_revoked")
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        account = key.service_account.account if key.service_account_id else None
        audit_record(event=events.API_KEY_REVOKED, actor=actor, account=account, target=key)
    return key


def api_key_record_use(key: ApiKey, *, now, ip: str | None, account_ref: str | None = None) -> None:
    """Write down a use of ``key``: ``last_used_at``/``last_used_ip`` (the caller asks
    ``api_key_use_due`` first, so a busy key writes at most once a minute per address). A use from
    an address other than the last one is an audit event (a leaked key shows up here): in the
    service account's account, or for a user key in the account the request acts in
    (``account_ref``) when its owner belongs to it, else in the trail of no account."""
    new_ip = key.last_used_ip is not None and ip is not None and not same_ip(key.last_used_ip, ip)
    previous_ip = key.last_used_ip
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip)
    key.last_used_at, key.last_used_ip = now, ip
    if not new_ip:
        return
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
