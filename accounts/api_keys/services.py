"""Creating and revoking keys. The plaintext is returned once, by ``api_key_create``, and never
stored."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.api_keys import secrets as key_secrets
from accounts.api_keys.models import ApiKey, ApiKeyPrefix
from accounts.models import ServiceAccount, User
from audit import events
from audit.services import audit_record
from config.errors import Conflict, InvalidInput

MAX_NAME_LENGTH = 200


def api_key_create(
    *, owner: User | ServiceAccount, name: str, actor, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``owner``: ``(key, plaintext)``. Show the plaintext once; only its hash is kept."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"An API key needs a name of 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name"
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("An API key's expiry must be in the future.", code="invalid_expiration")
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
            created_by=actor if isinstance(actor, User) else None,
            **owner_fields,
        )
        audit_record(
            event=events.API_KEY_CREATED,
            actor=actor,
            account=account,
            target=key,
            payload={"prefix": prefix.value, "expires_at": expires_at.isoformat() if expires_at else None},
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
