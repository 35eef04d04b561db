"""The ASGI front's guard: a request's body is read on the event loop, within a deadline and a size
cap, before the request takes one of the few threads that run Django.

Without it a client that announces a large body and then sends it slowly (or not at all) holds a
worker thread for as long as it likes; a dozen such connections, no credentials needed, stall every
HTTP request of the process. Here a slow or stalled upload costs only its own connection: it is
answered 408 when the deadline passes, 413 when it announces or sends more than the cap, and the
application sees a request only once its whole body has arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


async def answer(send, status: int, detail: str) -> None:
    """A JSON error answer straight from the ASGI front; the connection is closed after it."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BufferedBody:
    """ASGI middleware: read the whole body (at most ``max_bytes``, within ``timeout`` seconds of
    the request's start) before calling the application, then hand it over in one message."""

    def __init__(self, app: ASGIApp, *, timeout: float, max_bytes: int):
        self.app = app
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        announced = _content_length(scope)
        if announced is not None and announced > self.max_bytes:
            return await answer(send, 413, f"The request body may be at most {self.max_bytes} bytes.")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks: list[bytes] = []
        size = 0
        message: dict[str, Any] = {"more_body": True}
        try:
            while message.get("more_body"):
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                if message["type"] != "http.request":
                    return  # the client went away before its body arrived: nothing to answer
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    return await answer(send, 413, f"The request body may be at most {self.max_bytes} bytes.")
                chunks.append(chunk)
        except TimeoutError:
            return await answer(
                send, 408, f"The request body did not arrive within {self.timeout:g} seconds."
            )
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return whole
            return await receive()  # after the body: the disconnect, when it comes

        return await self.app(scope, replay, send)
