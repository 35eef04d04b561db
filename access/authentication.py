"""The credentials DRF accepts, both through the gate (``access.gate``).

``ApiKeyAuthentication``: ``Authorization: Bearer <key>``. Every failure answers the same 401.
Beside it in ``REST_FRAMEWORK``, DRF's own ``SessionAuthentication``: a browser session (Django's
session middleware) with DRF's CSRF check on unsafe methods; the gate's SSO step applies to it.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from access.gate import authenticate_key
from audit.context import client_ip
from core.credentials import bearer_token
from core.errors import INVALID_CREDENTIALS


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
        if token is None:
            # No header, or another scheme: not ours to judge; an unauthenticated request ends in 401.
            return None
        match = getattr(request, "resolver_match", None)
        account_ref = match.kwargs.get("account_ref") if match is not None else None
        key = authenticate_key(token, ip=client_ip(request), account_ref=account_ref)
        if key is None:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        return key.owner, key

    def authenticate_header(self, request) -> str:
        return "Bearer"
