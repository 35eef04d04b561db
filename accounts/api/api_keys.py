"""``/api/users/<id>/api_keys…``: a person's own API keys."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import ApiMixin, body_datetime, iso, path_id
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.models import User
from core.errors import Forbidden, NotFound, Unprocessable


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


class UserApiKeysApi(_OwnKeysMixin, APIView):
    def get(self, request, user_id):
        user = self._owner(user_id)
        keys = ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created")
        name = request.query_params.get("name")
        if name:
            keys = keys.filter(name=name)
        return Response([key_wire(key) for key in keys])

    def post(self, request, user_id):
        user = self._owner(user_id)
        if request.auth is None:  # a browser session, not a key
            from accounts.sso.enforcement import key_creation_refusal

            refusal = key_creation_refusal(request._request)
            if refusal is not None:
                raise Forbidden(refusal, code="sso_required")
        body = self.body()
        scopes = body.get("scopes")
        if scopes is not None and not isinstance(scopes, list):
            raise Unprocessable("scopes must be a list of scope names.", code="invalid_scopes")
        key, plaintext = api_key_create(
            owner=user,
            name=body.get("name") or "",
            actor=user,
            expires_at=body_datetime(body.get("expiration"), "expiration"),
            scopes=scopes,
        )
        return Response(key_wire(key, plaintext), status=201)


class UserApiKeyApi(_OwnKeysMixin, APIView):
    def _key(self, user, key_id) -> ApiKey:
        key = ApiKey.objects.filter(user=user, pk=path_id(key_id, "API key"), revoked_at__isnull=True).first()
        if key is None:
            raise NotFound("API key not found.")
        return key

    def get(self, request, user_id, key_id):
        return Response(key_wire(self._key(self._owner(user_id), key_id)))

    def delete(self, request, user_id, key_id):
        user = self._owner(user_id)
        api_key_revoke(key=self._key(user, key_id), actor=user)
        return Response(status=204)
