"""``bots/…``: service accounts (Prefect Cloud's bots) and their keys."""

from __future__ import annotations

from typing import Annotated, Any

from rest_framework.response import Response

from accounts import rbac
from accounts.api.api_keys import key_wire
from accounts.api.base import (
    AccountApi,
    Body,
    BodyDatetime,
    BodyUUID,
    any_filter,
    body_uuid,
    iso,
    optional_integer,
    paged,
    path_id,
)
from accounts.api_keys.selectors import service_account_newest_keys
from accounts.models import ServiceAccount
from accounts.permissions import AccountRole, builtin_account_role_id
from accounts.selectors import service_account_get, service_account_list
from accounts.services import service_account_delete
from core.errors import NotFound

_NOT_GIVEN = object()


def bot_wire(service_account: ServiceAccount, *, key=_NOT_GIVEN, plaintext: str | None = None) -> dict:
    """The bot with its key: the one given (a new key, with its plaintext), or else its newest
    usable key (masked)."""
    if key is _NOT_GIVEN:
        key = service_account_newest_keys([service_account]).get(service_account.id)
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


class BotCreate(Body):
    account_role_id: BodyUUID = None
    api_key_expiration: BodyDatetime = None
    name: Any = None


class BotsApi(AccountApi):
    required_permissions = {"POST": "create:bot"}

    def post(self, request, **kwargs):
        body = self.parse(BotCreate)
        bot, key, plaintext = rbac.service_account_create_with_key(
            account=self.account,
            name=body.name,
            actor=request.user,
            account_role=self._account_role(body.account_role_id),
            key_expires_at=body.api_key_expiration,
        )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)


class BotsFilterApi(AccountApi):
    required_permissions = {"POST": "read:bot"}

    def post(self, request, **kwargs):
        body = self.body()
        names = any_filter(body, "service_accounts", "name")
        ids = any_filter(body, "service_accounts", "id")
        bots = service_account_list(
            account=self.account,
            names=names,
            ids=[body_uuid(value, "id") for value in ids] if ids is not None else None,
        )
        if isinstance(body.get("any_"), list):  # an older provider's top-level id filter
            bots = bots.filter(pk__in=[body_uuid(value, "id") for value in body["any_"]])
        page = list(paged(body, bots))
        keys = service_account_newest_keys(page)
        return Response([bot_wire(bot, key=keys.get(bot.id)) for bot in page])


class _BotLookup:
    def _bot(self, bot_id) -> ServiceAccount:
        bot = service_account_get(account=self.account, service_account_id=path_id(bot_id, "Bot"))
        if bot is None:
            raise NotFound("Bot not found.")
        return bot


class BotChange(Body):
    name: Any = None
    account_role_id: BodyUUID = None


class BotApi(_BotLookup, AccountApi):
    required_permissions = {"GET": "read:bot", "PATCH": "update:bot", "DELETE": "delete:bot"}

    def get(self, request, bot_id, **kwargs):
        return Response(bot_wire(self._bot(bot_id)))

    def patch(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.parse(BotChange)
        role = self._account_role(body.account_role_id, default=None)
        rbac.service_account_update(
            service_account=bot, actor=request.user, name=body.name, account_role=role
        )
        return Response(status=204)

    def delete(self, request, bot_id, **kwargs):
        service_account_delete(service_account=self._bot(bot_id), actor=request.user)
        return Response(status=204)


class KeyRotation(Body):
    old_key_expires_in_seconds: Annotated[
        Any, optional_integer("old_key_expires_in_seconds must be an integer.", "invalid_grace")
    ] = None
    api_key_expiration: BodyDatetime = None


class BotRotateKeyApi(_BotLookup, AccountApi):
    required_permissions = {"POST": "update:bot"}

    def post(self, request, bot_id, **kwargs):
        bot = self._bot(bot_id)
        body = self.parse(KeyRotation)
        key, plaintext = rbac.service_account_rotate_key(
            service_account=bot,
            actor=request.user,
            expires_at=body.api_key_expiration,
            old_key_expires_in_seconds=body.old_key_expires_in_seconds,
        )
        return Response(bot_wire(bot, key=key, plaintext=plaintext), status=201)
