"""The product's Prometheus metrics, and the cheap calls that record them.

Every process (web, worker, beat) records into prometheus-client's default registry. With several
server processes behind one address, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, wiped
when the processes start) before any of them starts: prometheus-client then keeps each value in a
memory-mapped file per process, and ``/metrics`` (``config.observability``) sums the files of every
process. Without it a process answers its own values only. A Celery worker or beat serves the same
exposition on its own port (``METRICS_PORT``, ``config.metrics_server``); a worker's tasks run in
its pool's processes, so it needs the directory too (one per worker, never shared with the web's).

Labels never carry a tenant's id: requests are labelled by the route *template*
(``api/accounts/<str:account_ref>/workspaces/<str:workspace_ref>/flow_runs/<uuid:id>/set_state``),
never the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The route label of a request that no route matched (a 404 before any view).
UNMATCHED_ROUTE = "<unmatched>"

REQUEST_LATENCY = Histogram(
    "controlplane_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RESPONSES = Counter(
    "controlplane_http_responses",
    "HTTP responses by route template and status code.",
    ["method", "route", "status"],
)
SET_STATE_OUTCOMES = Counter(
    "controlplane_set_state_outcomes",
    "Proposed state changes by kind of run and orchestration outcome (ACCEPT, REJECT, WAIT, ABORT).",
    ["kind", "status"],
)
EVENTS_INGESTED = Counter(
    "controlplane_events_ingested",
    "Events stored (new ones; duplicates of a stored event id are not counted).",
)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
EVENT_INGEST_LAG = Histogram(
    "controlplane_event_ingest_lag_seconds",
    "From an event's occurred time to its storing, per stored event (clients' clocks included).",
    buckets=_LAG_BUCKETS,
)
TRIGGER_LAG = Histogram(
    "controlplane_trigger_lag_seconds",
    "From a reactive trigger's triggering event reaching the server to the automation firing.",
    buckets=_LAG_BUCKETS,
)
SCHEDULER_TICK = Histogram(
    "controlplane_scheduler_tick_seconds",
    "Time one scheduler pass takes (deployments' runs created on the clock).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

CELERY_TASKS = Counter(
    "controlplane_celery_tasks",
    "Celery tasks a worker ran, by task name and outcome (Celery's state: SUCCESS, FAILURE, RETRY, …).",
    ["task", "outcome"],
)
CELERY_TASK_DURATION = Histogram(
    "controlplane_celery_task_duration_seconds",
    "Time a Celery task ran in a worker, by task name.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
# Beat is one process; "mostrecent" keeps its value when a multiprocess directory is set.
BEAT_TICK = Gauge(
    "controlplane_beat_last_tick_timestamp_seconds",
    "When beat last woke to send what is due (Unix time); it wakes every few seconds.",
    multiprocess_mode="mostrecent",
)
BEAT_LOCK_HELD = Gauge(
    "controlplane_beat_lock_held",
    "1 while this beat holds the beat lock and sends the schedule, 0 while it stands by.",
    multiprocess_mode="mostrecent",
)
BEAT_ENTRY_SENT = Gauge(
    "controlplane_beat_entry_last_sent_timestamp_seconds",
    "When beat last sent a schedule entry's task (Unix time), by entry name.",
    ["entry"],
    multiprocess_mode="mostrecent",
)

# The four outcomes of each kind, bound once: recording one is then a single increment.
_SET_STATE = {
    (kind, status): SET_STATE_OUTCOMES.labels(kind=kind, status=status)
    for kind in ("flow_run", "task_run")
    for status in ("ACCEPT", "REJECT", "WAIT", "ABORT")
}


def record_set_state(kind: str, status: str) -> None:
    """One orchestrated proposal of a ``flow_run`` or ``task_run`` ended with ``status``."""
    child = _SET_STATE.get((kind, status))
    if child is None:
        child = SET_STATE_OUTCOMES.labels(kind=kind, status=status)
    child.inc()


def record_events_ingested(count: int, lags: Iterable[float] = ()) -> None:
    """``count`` events stored, each ``lag`` seconds after it occurred (negative lags, a client's
    clock ahead of the server's, count as none)."""
    if count:
        EVENTS_INGESTED.inc(count)
    for lag in lags:
        EVENT_INGEST_LAG.observe(max(lag, 0.0))


def record_trigger_lag(seconds: float) -> None:
    TRIGGER_LAG.observe(max(seconds, 0.0))


def record_scheduler_tick(seconds: float) -> None:
    SCHEDULER_TICK.observe(seconds)


def record_task(task: str, outcome: str, seconds: float | None) -> None:
    """A Celery task ``task`` ended with ``outcome`` after ``seconds`` (None: its start was not seen)."""
    CELERY_TASKS.labels(task=task, outcome=outcome).inc()
    if seconds is not None:
        CELERY_TASK_DURATION.labels(task=task).observe(seconds)


def record_beat_tick(*, at: float, holding: bool) -> None:
    BEAT_TICK.set(at)
    BEAT_LOCK_HELD.set(1 if holding else 0)


def record_beat_sent(entry: str, at: float) -> None:
    BEAT_ENTRY_SENT.labels(entry=entry).set(at)


# Children by label values, so a request costs two dict lookups rather than two label resolutions.
# Bounded: routes, methods and statuses are finite, and unmatched paths share one route label.
_latency: dict[tuple[str, str], Any] = {}
_responses: dict[tuple[str, str, int], Any] = {}


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route)
    latency = _latency.get(key)
    if latency is None:
        latency = _latency[key] = REQUEST_LATENCY.labels(method, route)
    latency.observe(seconds)
    response_key = (method, route, status)
    responses = _responses.get(response_key)
    if responses is None:
        responses = _responses[response_key] = RESPONSES.labels(method, route, str(status))
    responses.inc()


class _Collected:
    """A collector of metric families computed when scraped (a queue's depth, say)."""

    def __init__(self, collect):
        self._collect = collect

    def collect(self):
        return self._collect()


def exposition(collect_at_scrape=None) -> bytes:
    """The text exposition of every metric: summed over every process's files in multiprocess mode,
    else this process's registry; plus the families ``collect_at_scrape()`` yields, if given."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        text = generate_latest(registry)
    else:
        text = generate_latest()
    if collect_at_scrape is not None:
        extra = CollectorRegistry()
        extra.register(_Collected(collect_at_scrape))
        text += generate_latest(extra)
    return text
