"""The ASGI server's event loop, for synchronous code that hands work to it without waiting.

HTTP requests run in worker threads (see ``config.asgi``); the loop that serves the websockets is
remembered on the first request so that, for example, publishing events to ``/events/out``
subscribers can be scheduled there (where the channel layer's connections live) instead of
blocking the request on a loop of its own. Outside a server (Celery, management commands, tests
through Django's test client) there is none, and callers fall back to running the work in place.
"""

from __future__ import annotations

import asyncio

_loop: asyncio.AbstractEventLoop | None = None


def remember(loop: asyncio.AbstractEventLoop) -> None:
    global _loop
    _loop = loop


def running_server_loop() -> asyncio.AbstractEventLoop | None:
    """The server's loop, if one is running in another thread than the caller's."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    try:
        if asyncio.get_running_loop() is loop:
            return None
    except RuntimeError:
        pass
    return loop
