"""Probes, metrics and the access log: what a platform watches the product through.

``ObservabilityMiddleware`` is the first middleware. It answers three paths itself, before host
validation, the HTTPS redirect and sessions (a kubelet probes a pod by its IP, over plain HTTP):

* ``GET /healthz``: the process answers (no database, no Redis).
* ``GET /readyz``: the database, Redis and the Celery broker each answer within
  ``READINESS_TIMEOUT_SECONDS`` (checked at once, in threads); else 503 naming which failed.
* ``GET /metrics``: the Prometheus exposition (``core.metrics``), only to a client address in
  ``METRICS_ALLOWED_ADDRESSES`` (CIDRs, by the trusted-proxy rules); anyone else gets 404. The
  Celery queues' depth is read from the broker when scraped.

Every other request is timed and counted by its route template (the resolver's route, never the
path, so no tenant id becomes a label), and logged once when it ends (method, route, path without
its query string, status, duration; the request id, account and workspace come from the log
context, ``config.logging``). ``/api/health`` (database only) stays as it was.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client.core import GaugeMetricFamily

from config import logging as log_context
from config.metrics_server import address_allowed
from core import metrics

logger = logging.getLogger("controlplane.access")

PROBE_PATHS = ("/healthz", "/readyz", "/metrics")

# Readiness checks run here: a request thread waits at most READINESS_TIMEOUT_SECONDS, and a hung
# dependency holds at most these three threads (later probes queue behind them and time out).
_checks = ThreadPoolExecutor(max_workers=3, thread_name_prefix="readyz")


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # back to the pool (or closed): this thread keeps nothing open


def _check_redis() -> None:
    # Function-level import: redis-py is loaded only by processes that probe readiness.
    import redis

    timeout = settings.READINESS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    # Function-level import: the Celery app is the composition root's, loaded only when probed.
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.READINESS_TIMEOUT_SECONDS)


def readiness() -> tuple[bool, dict[str, str]]:
    """Check every dependency at once; ``(all ok, {name: "ok" | "skipped" | "timeout" | "failed"})``."""
    checks = {"database": _check_database, "broker": _check_broker}
    results: dict[str, str] = {}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    else:
        results["redis"] = "skipped"  # the embedded default runs without Redis
    futures = {name: _checks.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + settings.READINESS_TIMEOUT_SECONDS
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            results[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the kind is logged
            logger.warning("Readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return all(value in ("ok", "skipped") for value in results.values()), dict(sorted(results.items()))


def metrics_allowed(request) -> bool:
    return address_allowed(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def _probe(request):
    path = request.path_info
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"detail": "Method not allowed"}, status=405, headers={"Allow": "GET, HEAD"})
    if path == "/healthz":
        return JsonResponse({"status": "ok"})
    if path == "/readyz":
        ready, results = readiness()
        body = {"status": "ok" if ready else "unavailable", "checks": results}
        if not ready:
            body["failed"] = [name for name, value in results.items() if value not in ("ok", "skipped")]
        return JsonResponse(body, status=200 if ready else 503)
    if not metrics_allowed(request):
        return JsonResponse({"detail": "Not Found"}, status=404)
    return HttpResponse(
        metrics.exposition(collect_at_scrape=_scraped),
        content_type="text/plain; version=0.0.4; charset=utf-8",
    )


def _scraped():
    """What is read when scraped: the Celery queues' depth, the audit chains' lag and their last
    verification."""
    return [*_queue_depth(), *_audit_chain_lag(), *_audit_chain_verification()]


def _audit_chain_verification():
    """``controlplane_audit_chains_broken``, ``controlplane_audit_chain_entries_verified`` and
    ``controlplane_audit_chains_verified_timestamp_seconds``: what beat's hourly walk of every chain
    (``audit.tasks.verify_audit_chains``) found last; left out until one has run (or, without Redis,
    in a process other than the one that ran it)."""
    # Function-level import: models load once Django is set up, after this module is imported.
    from audit.services import CHAINS_VERIFIED_CACHE_KEY

    try:
        summary = cache.get(CHAINS_VERIFIED_CACHE_KEY)
    except Exception as exc:  # noqa: BLE001 - a cache that does not answer leaves the gauges out
        logger.warning("Audit chain verification unavailable: %s", type(exc).__name__)
        return []
    if not isinstance(summary, dict):
        return []
    families = []
    for name, documentation, value in (
        ("controlplane_audit_chains_broken", "Audit chains whose last verification found a broken link.",
         len(summary.get("broken") or [])),
        ("controlplane_audit_chain_entries_verified", "Audit entries the last verification checked.",
         summary.get("entries", 0)),
        ("controlplane_audit_chains_verified_timestamp_seconds", "When every audit chain was last verified.",
         summary.get("at", 0)),
    ):  # fmt: skip
        family = GaugeMetricFamily(name, documentation)
        family.add_metric([], float(value))
        families.append(family)
    return families


def _audit_chain_lag():
    """``controlplane_audit_pending_entries`` and ``controlplane_audit_pending_oldest_seconds``:
    audit records written durably but not yet in their hash chain (reads of secrets), and how long
    the oldest has waited; beat chains them within seconds, so a growing figure means it does not."""
    # Function-level import: models load once Django is set up, after this module is imported.
    from audit.models import AuditPendingEntry

    count = GaugeMetricFamily(
        "controlplane_audit_pending_entries", "Audit records waiting to join their chain."
    )
    oldest = GaugeMetricFamily(
        "controlplane_audit_pending_oldest_seconds",
        "How long the oldest audit record has waited for its chain.",
    )
    try:
        pending = AuditPendingEntry.objects.order_by("position")
        first = pending.values_list("fields", flat=True).first()
        count.add_metric([], pending.count())
        written = parse_datetime(str((first or {}).get("occurred") or ""))
        oldest.add_metric([], max((timezone.now() - written).total_seconds(), 0.0) if written else 0.0)
    except DatabaseError as exc:
        logger.warning("Audit chain lag unavailable: %s", type(exc).__name__)
        return []
    return [count, oldest]


def _queue_depth():
    """``controlplane_celery_queue_depth{queue}``: messages waiting in each Celery queue, read from
    the broker when scraped (absent when the broker does not answer in time)."""
    # Function-level import: the Celery app is the composition root's, loaded only when scraped.
    from config.celery import app

    family = GaugeMetricFamily(
        "controlplane_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
    )
    names = sorted({app.conf.task_default_queue, *(q.name for q in app.conf.task_queues or ())})
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.READINESS_TIMEOUT_SECONDS)
            channel = conn.default_channel
            for name in names:
                try:
                    depth = channel.queue_declare(queue=name, passive=True).message_count
                except conn.channel_errors:  # never declared: nothing waits in it
                    depth = 0
                    channel = conn.channel()
                family.add_metric([name], depth)
    except Exception as exc:  # noqa: BLE001 - a broker that does not answer leaves the gauge out
        logger.warning("Celery queue depth unavailable: %s", type(exc).__name__)
        return []
    return [family]


class ObservabilityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in PROBE_PATHS:
            return _probe(request)
        started = time.perf_counter()
        token = log_context.enter()
        try:
            response = self.get_response(request)
            match = request.resolver_match
            route = match.route if match is not None else metrics.UNMATCHED_ROUTE
            seconds = time.perf_counter() - started
            metrics.record_request(request.method, route, response.status_code, seconds)
            # The request's own context has been left by now: its id is the one it answered with.
            log_context.update(request_id=response.get("X-Request-ID"))
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
            return response
        finally:
            log_context.leave(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """The account and workspace the path names, for every log line of the request."""
        log_context.update(
            account=view_kwargs.get("account_ref") or view_kwargs.get("account_id"),
            workspace=view_kwargs.get("workspace_ref"),
        )
