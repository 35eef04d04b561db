"""ASGI entry point: HTTP through Django (WSGI in a bounded thread pool), websockets through Channels.

Django's own ASGI handler runs every synchronous view through several thread hand-offs and a new
thread per request; every view here is synchronous, so HTTP goes to Django's WSGI handler on a
fixed pool of ``HTTP_THREADS`` threads per process instead (a2wsgi), which serves about twice the
requests per second. Websockets stay on the event loop with Channels. A request's body is read on
the loop, within a deadline and a size cap, before the request takes a thread
(``core.asgi.BufferedBody``), so a slow upload costs a connection, never a thread. A worker's poll that can be
answered from memory is answered on the loop before Django (``orchestration.api.poll_fast_path``).
"""

from __future__ import annotations

import asyncio
import os

import django

from config.embedded import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
prepare()
django.setup(set_prefix=False)  # before importing the routes and their models

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from config.wsgi import application as django_wsgi_app  # noqa: E402
from core import serverloop  # noqa: E402
from core.asgi import BufferedBody  # noqa: E402
from orchestration.api.poll_fast_path import PollFastPath  # noqa: E402


class _RememberLoop:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        serverloop.remember(asyncio.get_running_loop())
        await self.app(scope, receive, send)


http_application = _RememberLoop(
    BufferedBody(
        PollFastPath(WSGIMiddleware(django_wsgi_app, workers=settings.HTTP_THREADS)),
        timeout=settings.HTTP_BODY_TIMEOUT_SECONDS,
        max_bytes=settings.HTTP_MAX_BODY_BYTES,
    )
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": _RememberLoop(URLRouter(websocket_urlpatterns)),
    }
)
