"""``/api/users/<id>/api_keys…``: a person's own API keys."""

from __future__ import annotations

from typing import Annotated, Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import ApiMixin, Body, BodyDatetime, checked, iso, path_id
from accounts.api_keys.models import ApiKey
from accounts.api_keys.selectors import user_api_key_get, user_api_key_list
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.models import User
from accounts.sso.enforcement import key_creation_refusal
from core.errors import Forbidden, NotFound


def key_wire(key: ApiKey | None, plaintext: str | None = None) -> dict | None:
    if key is None:
        return None
    data = {
        "id": str(key.id),
        "created": iso(key.created),
        "name": key.name,
        "expiration": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "last_used_ip": key.last_used_ip,
        "scopes": key.scopes,
    }
    if plaintext is not None:
        data["key"] = plaintext
    else:
        data["masked_key"] = key.display
    return data


class _OwnKeysMixin(ApiMixin):
    permission_classes = [IsAuthenticated]

    def _owner(self, user_id) -> User:
        principal = self.request.user
        if not isinstance(principal, User) or str(principal.pk) != str(path_id(user_id, "User")):
            raise NotFound("User not found.")
        return principal


class KeyCreate(Body):
    name: Any = None
    scopes: Annotated[
        Any,
        checked(
            lambda value: value is None or isinstance(value, list),
            "scopes must be a list of scope names.",
            "invalid_scopes",
        ),
    ] = None
    expiration: BodyDatetime = None


class UserApiKeysApi(_OwnKeysMixin, APIView):
    def get(self, request, user_id):
        user = self._owner(user_id)
        keys = user_api_key_list(user=user, name=request.query_params.get("name"))
        return Response([key_wire(key) for key in keys])

    def post(self, request, user_id):
        user = self._owner(user_id)
        if request.auth is None:  # a browser session, not a key
            refusal = key_creation_refusal(request._request)
            if refusal is not None:
                raise Forbidden(refusal, code="sso_required")
        body = self.parse(KeyCreate)
        key, plaintext = api_key_create(
            owner=user, name=body.name or "", actor=user, expires_at=body.expiration, scopes=body.scopes
        )
        return Response(key_wire(key, plaintext), status=201)


class UserApiKeyApi(_OwnKeysMixin, APIView):
    def _key(self, user, key_id) -> ApiKey:
        key = user_api_key_get(user=user, key_id=path_id(key_id, "API key"))
        if key is None:
            raise NotFound("API key not found.")
        return key

    def get(self, request, user_id, key_id):
        return Response(key_wire(self._key(self._owner(user_id), key_id)))

    def delete(self, request, user_id, key_id):
        user = self._owner(user_id)
        api_key_revoke(key=self._key(user, key_id), actor=user)
        return Response(status=204)
