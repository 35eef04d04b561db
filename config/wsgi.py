"""WSGI entry point: Django's HTTP side. ``config.asgi`` serves it from the ASGI server's thread pool."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

application = get_wsgi_application()
