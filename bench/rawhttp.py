"""A lean HTTP/1.1 keep-alive client for load loops (one connection per simulated worker).

The pollers of part (e) share one Python process and the machine's two cores with the servers; with
httpx the load generator alone needs a full core at about 1,000 requests/s and becomes the limit
(and its own queueing shows up as server latency). This client sends a prepared request and reads
``Content-Length`` bodies, and nothing else: no redirects, no chunked bodies, no TLS. It is used the
same way against both servers.
"""

from __future__ import annotations

import asyncio
import json as _json
from urllib.parse import urlsplit


class RawResponse:
    __slots__ = ("status_code", "content")

    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.content)


class RawClient:
    def __init__(self, base_url: str, headers: dict[str, str]):
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/") + "/"
        fixed = {"Host": f"{self.host}:{self.port}", "Connection": "keep-alive", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def post(self, path: str, *, json: object) -> RawResponse:
        """POST ``json`` (as httpx's ``post(path, json=…)``)."""
        body = _json.dumps(json).encode()
        content_type = "application/json"
        for attempt in (0, 1):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            head = (
                f"POST {self.base_path}{path} HTTP/1.1\r\n{self._fixed}"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
            try:
                self._writer.write(head + body)
                return await self._read()
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.aclose()  # the server closed an idle connection: reconnect once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _read(self) -> RawResponse:
        assert self._reader is not None
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this client")
        content = await self._reader.readexactly(length) if length else b""
        if close:
            await self.aclose()
        return RawResponse(status, content)
