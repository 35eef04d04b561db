"""The credentials DRF accepts, both through the gate (``access.gate``).

``ApiKeyAuthentication``: ``Authorization: Bearer <key>``. Every failure answers the same 401.
Beside it in ``REST_FRAMEWORK``, ``SessionCsrfAuthentication``: a browser session (Django's session
middleware) whose unsafe requests must pass a CSRF check before any view runs: Prefect's (the UI's
``Prefect-Csrf-Token``/``Prefect-Csrf-Client``, ``access.csrf``) when the request carries its
headers, else Django's (the console's forms). A refusal is a 403 and nothing is done. The gate's
SSO step applies to the session. Bearer keys need no CSRF token (a browser never sends one by
itself).
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from access.csrf import CLIENT_HEADER, TOKEN_HEADER, csrf_refusal
from access.gate import authenticate_key
from accounts import throttles
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
        ip = client_ip(request)
        # An address refused for guessing keys is known from memory: no counter read for a valid key.
        throttles.check(throttles.Door.API_KEY, address=ip, subject=account_ref, from_memory=True)
        key = authenticate_key(token, ip=ip, account_ref=account_ref)
        if key is None:
            throttles.failed(throttles.Door.API_KEY, address=ip, subject=account_ref, account_ref=account_ref)
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        return key.owner, key

    def authenticate_header(self, request) -> str:
        return "Bearer"


class SessionCsrfAuthentication(authentication.SessionAuthentication):
    def enforce_csrf(self, request):
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return
        meta = request._request.META
        if TOKEN_HEADER in meta or CLIENT_HEADER in meta:
            refusal = csrf_refusal(request._request)
            if refusal is not None:
                raise exceptions.PermissionDenied(refusal)
            return
        super().enforce_csrf(request)
