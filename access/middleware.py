"""Middleware of the access gate for browser sessions."""

from __future__ import annotations

from django.conf import settings

from accounts.sso.enforcement import session_sso
from audit.context import Credential, set_credential


class SessionCredentialMiddleware:
    """For a request a browser session authenticates, what audit records carry as ``auth``: the
    method ``session``, or ``sso-saml``/``sso-oidc`` for a session an identity provider started.
    (API keys set theirs when DRF authenticates them, which wins.) After Django's authentication
    middleware; only requests that carry a session cookie are looked at."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SESSION_COOKIE_NAME in request.COOKIES and request.user.is_authenticated:
            kind = (session_sso(request.session) or {}).get("kind")
            set_credential(Credential(method=f"sso-{kind}" if kind else "session"))
        return self.get_response(request)
