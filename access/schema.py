"""OpenAPI description of API-key and browser-session authentication (drf-spectacular)."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A user key (pnu_…) or a service-account key (pnb_…).",
        }


class SessionCsrfAuthenticationScheme(SessionScheme):
    """A browser session, described as DRF's session authentication is (``cookieAuth``)."""

    target_class = "access.authentication.SessionCsrfAuthentication"
