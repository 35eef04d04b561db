"""A local HTTP receiver standing in for Slack, Teams or any webhook endpoint: it records what it
was sent, and can answer with a redirect, a large body or slowly."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, headers, content, delay = receiver.routes.get(
                    self.path.split("?")[0], (200, {}, b"ok", 0.0)
                )
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path: str, *, status=200, headers=None, body: bytes = b"ok", delay: float = 0.0) -> None:
        self.routes[path] = (status, headers or {}, body, delay)

    def json_bodies(self) -> list:
        return [json.loads(r["body"]) for r in self.requests if r["body"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
