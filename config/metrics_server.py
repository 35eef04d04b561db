"""Metrics of the Celery worker and beat processes, which serve no HTTP of their own.

With ``METRICS_PORT`` set, a worker (once ready) and beat (once started) each serve
``GET /metrics`` on that port, in a thread of their main process: the same exposition as the web's
``/metrics`` (``core.metrics``) and the same rule for who may read it (a client address in
``METRICS_ALLOWED_ADDRESSES``, by the trusted-proxy rules; anyone else gets 404). The figures read
from the broker and the database when scraped (queue depth, the audit chains' lag) are the web's
alone, so a scrape of every pod does not count them once per process.

A worker runs its tasks in its pool's processes: with ``PROMETHEUS_MULTIPROC_DIR`` (the image sets
it) each keeps its values in that directory and the main process's server sums them. Without it a
prefork worker's server could show nothing its tasks recorded, so the worker says so in its log.

Recorded here, in any process that runs a task (a worker; a web process in eager mode):
``controlplane_celery_tasks_total{task,outcome}`` and ``controlplane_celery_task_duration_seconds``
from Celery's ``task_prerun``/``task_postrun`` signals. Beat's own gauges are set by
``config.beat.SingleBeatScheduler``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from celery import signals
from django.conf import settings

from audit.context import resolve_client_ip
from core import metrics

logger = logging.getLogger(__name__)

# Start times of the tasks running in this process, by task id (a pool process runs one at a time;
# a thread pool several).
_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_ended(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None) if task_id else None
    name = getattr(task, "name", None) or "<unknown>"
    metrics.record_task(name, state or "UNKNOWN", None if started is None else time.perf_counter() - started)


@functools.cache
def _networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in spec if entry.strip())


def address_allowed(peer: str | None, forwarded_for: str | None) -> bool:
    """Who may read metrics, on the web's ``/metrics`` and on a worker's or beat's port alike: the
    client address (by the trusted-proxy rules) is in ``METRICS_ALLOWED_ADDRESSES``."""
    ip = resolve_client_ip(peer, forwarded_for)
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_ADDRESSES)))


class _Handler(BaseHTTPRequestHandler):
    server_version = "controlplane-metrics"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/metrics" or not address_allowed(
            self.client_address[0], self.headers.get("X-Forwarded-For")
        ):
            self._send(404, b'{"detail": "Not Found"}', "application/json", body)
            return
        try:
            text = metrics.exposition()
        except Exception:  # noqa: BLE001 - a scrape never takes the process down
            logger.exception("metrics exposition failed")
            self._send(500, json.dumps({"detail": "metrics unavailable"}).encode(), "application/json", body)
            return
        self._send(200, text, "text/plain; version=0.0.4; charset=utf-8", body)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # scrapes are not logged


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # One socket for IPv4 and IPv6 clients (an IPv4 client shows as ::ffff:a.b.c.d, which
        # the address rules read as its IPv4 address).
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _Server4(ThreadingHTTPServer):
    daemon_threads = True


_server: ThreadingHTTPServer | None = None


def make_server(port: int) -> ThreadingHTTPServer:
    """A server of ``/metrics`` bound to ``port`` on every address (not yet serving)."""
    try:
        return _Server(("::", port), _Handler)
    except OSError:  # no IPv6 on this host
        return _Server4(("0.0.0.0", port), _Handler)  # noqa: S104 - scrapers reach pods by their IP


def serve(port: int, role: str) -> ThreadingHTTPServer:
    """Serve ``/metrics`` on ``port`` in a daemon thread; once per process."""
    global _server
    if _server is not None:
        return _server
    server = make_server(port)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    _server = server
    logger.info("%s metrics on port %s (/metrics)", role, server.server_address[1])
    return server


def _serve_if_asked(role: str, *, pool_processes: bool) -> None:
    port = settings.METRICS_PORT
    if not port:
        return
    if pool_processes and not os.environ.get(metrics.MULTIPROC_DIR_ENV):
        logger.warning(
            "METRICS_PORT is set without PROMETHEUS_MULTIPROC_DIR: the worker's pool processes run the "
            "tasks, and their metrics reach this port only through that directory"
        )
    serve(port, role)


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs) -> None:
    controller = getattr(sender, "controller", None)
    pool = getattr(controller, "pool", None)
    _serve_if_asked("worker", pool_processes="prefork" in type(pool).__module__)


@signals.beat_init.connect
def _beat_started(sender=None, **kwargs) -> None:
    _serve_if_asked("beat", pool_processes=False)
