"""``Authorization: Bearer <key>`` for DRF. The scheme word is case-insensitive (the ``prefect``
client sends both ``Bearer`` and ``bearer``). Every failure answers the same 401."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.api_keys.selectors import api_key_authenticate
from audit.context import Credential, client_ip, set_credential
from core.errors import INVALID_CREDENTIALS


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != self.keyword:
            # Another scheme is not ours to judge; an unauthenticated request ends in 401 anyway.
            return None
        match = getattr(request, "resolver_match", None)
        account_ref = match.kwargs.get("account_ref") if match is not None else None
        key = api_key_authenticate(token.strip(), ip=client_ip(request), account_ref=account_ref)
        if key is None:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        set_credential(Credential(method="api_key", api_key_id=str(key.pk)))
        return key.owner, key

    def authenticate_header(self, request) -> str:
        return "Bearer"
