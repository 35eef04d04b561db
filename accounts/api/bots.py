"""``bots/…``: service accounts (Prefect Cloud's bots) and their keys."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.response import Response

from accounts import rbac
from accounts.api.api_keys import key_wire
from accounts.api.base import AccountApi, any_filter, body_datetime, body_uuid, iso, paged, path_id
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create
from accounts.models import ServiceAccount
from accounts.permissions import (
    AccountRole,
    builtin_account_role_id,
)
from accounts.services import (
    service_account_create,
    service_account_delete,
)
from core.errors import NotFound, Unprocessable


def active_keys(service_accounts) -> dict:
    """The newest usable key of each service account, in one query."""
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


_NOT_GIVEN = object()


def bot_wire(service_account: ServiceAccount, *, key=_NOT_GIVEN, plaintext: str | None = None) -> dict:
    """The bot with its key: the one given (a new key, with its plaintext), or else its newest
    usable key (masked)."""
    if key is _NOT_GIVEN:
        key = active_keys([service_account]).get(service_account.id)
    role = AccountRole(service_account.account_role)
    return {
        "id": str(service_account.id),
        "created": iso(service_account.created),
        "updated": iso(service_account.updated),
        "actor_id": str(service_account.id),
        "account_id": str(service_account.account_id),
        "name": service_account.name,
        "account_role_id": str(builtin_account_role_id(role.value)),
        "account_role_name": role.label,
        "api_key": key_wire(key, plaintext),
    }


class BotsApi(AccountApi):
    required_permissions = {"POST": "create:bot"}

    def post(self, request, **kwargs):
        body = self.body()
        role = self._account_role(body)
        expires_at = body_datetime(body.get("api_key_expiration"), "api_key_expiration")

        with transaction.atomic():
            bot = service_account_create(
                account=self.account, name=body.get("name"), actor=request.user, account_role=role
            )
            key, plaintext = api_key_create(
                owner=bot, name=f"{bot.name} key", actor=request.user, expires_at=expires_at
            )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)


class BotsFilterApi(AccountApi):
    required_permissions = {"POST": "read:bot"}

    def post(self, request, **kwargs):
        body = self.body()
        bots = ServiceAccount.objects.filter(account=self.account).order_by("name")
        names = any_filter(body, "service_accounts", "name")
        ids = any_filter(body, "service_accounts", "id")
        if names is not None:
            bots = bots.filter(name__in=[str(name) for name in names])
        if ids is not None:
            bots = bots.filter(pk__in=[body_uuid(value, "id") for value in ids])
        if isinstance(body.get("any_"), list):  # an older provider's top-level id filter
            bots = bots.filter(pk__in=[body_uuid(value, "id") for value in body["any_"]])
        page = list(paged(body, bots))
        keys = active_keys(page)
        return Response([bot_wire(bot, key=keys.get(bot.id)) for bot in page])


class _BotLookup:
    def _bot(self, bot_id) -> ServiceAccount:
        bot = (
            ServiceAccount.objects.filter(account=self.account, pk=path_id(bot_id, "Bot"))
            .select_related("account")
            .first()
        )
        if bot is None:
            raise NotFound("Bot not found.")
        return bot


class BotApi(_BotLookup, AccountApi):
    required_permissions = {"GET": "read:bot", "PATCH": "update:bot", "DELETE": "delete:bot"}

    def get(self, request, bot_id, **kwargs):
        return Response(bot_wire(self._bot(bot_id)))

    def patch(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.body()
        role = self._account_role(body, default=None) if "account_role_id" in body else None
        rbac.service_account_update(
            service_account=bot, actor=request.user, name=body.get("name"), account_role=role
        )
        return Response(status=204)

    def delete(self, request, bot_id, **kwargs):
        service_account_delete(service_account=self._bot(bot_id), actor=request.user)
        return Response(status=204)


class BotRotateKeyApi(_BotLookup, AccountApi):
    required_permissions = {"POST": "update:bot"}

    def post(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.body()
        grace = body.get("old_key_expires_in_seconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise Unprocessable("old_key_expires_in_seconds must be an integer.", code="invalid_grace")
        key, plaintext = rbac.service_account_rotate_key(
            service_account=bot,
            actor=request.user,
            expires_at=body_datetime(body.get("api_key_expiration"), "api_key_expiration"),
            old_key_expires_in_seconds=grace,
        )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)
