"""The HTTP protocol the server runs (``uvicorn --http core.serving:HttpProtocol``).

uvicorn's own protocol waits for a request's headers as long as the client likes: a client that
opens connections and sends a header line now and then (slowloris) holds each one forever. This one
gives the headers of each request ``HTTP_HEADER_TIMEOUT_SECONDS`` from the connection's first byte
(or from the first byte of the next request on a kept-alive connection) and otherwise answers 408
and closes. Bodies have their own deadline in the ASGI front (``core.asgi.BufferedBody``).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0
_TOO_SLOW = b"The request headers did not arrive in time."


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            timeout = getattr(settings, "HTTP_HEADER_TIMEOUT_SECONDS", DEFAULT_HEADER_TIMEOUT)
            self._header_deadline = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_SLOW), _TOO_SLOW)
            )
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)
