"""WSGI entry point: Django's HTTP side. ``config.asgi`` serves it from the ASGI server's thread pool.

A request to ``/api/`` that carries a bearer key is served by a second handler whose middleware
leaves out what only a browser session needs (static files, sessions, CSRF, the session user and
its audit credential, messages), whatever cookies come with it: DRF authenticates the key itself,
and every API view is CSRF-exempt for keys. Security headers and HTTPS redirects, the request
context (id, client IP, user agent) and the audit log's actor stay on both.
"""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from config.embedded import prepare
from core.credentials import bearer_token

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
prepare()
django.setup(set_prefix=False)

BROWSER_ONLY_MIDDLEWARE = frozenset(
    {
        "console.ui_bundle.UiStaticFilesMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        # Reads the session user; a key request's credential is set when DRF authenticates the key.
        "access.middleware.SessionCredentialMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
    }
)


class KeyApiWSGIHandler(WSGIHandler):
    """Django's handler with the middleware a bearer-key API request needs."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path not in BROWSER_ONLY_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def _is_key_api_request(environ) -> bool:
    if not environ.get("PATH_INFO", "").startswith("/api/"):
        return False
    return bearer_token(environ.get("HTTP_AUTHORIZATION")) is not None


class Router:
    def __init__(self):
        self.full = WSGIHandler()
        self.key_api = KeyApiWSGIHandler()

    def __call__(self, environ, start_response):
        handler = self.key_api if _is_key_api_request(environ) else self.full
        return handler(environ, start_response)


application = Router()
