"""The real ``prefect`` client against the per-account rate limits (``access.limits``): past the
limit the server answers 429 with ``Retry-After``, the client waits that long and its call succeeds
without raising; on ``/events/in`` past the logs + events limit the socket stores nothing until the
window turns, then stores every event the client sent.

A window is a minute on the clock, so a test that waited for a real one to turn would take up to a
minute. The limiter's clock (``core.ratelimit.time``, read in the server's threads, which run in
this process) is shifted instead: from the first charge on it runs at the real pace, ``LEAD``
seconds before a minute turns. Everything else is real: the server, the limiter and its Redis or
in-process counters, the client's retry loop and its events worker.
"""

from __future__ import annotations

import threading
import time

import pytest

from access.limits import Bucket, retry_after_for
from core import ratelimit
from orchestration.models import Event, Flow

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

API_LIMIT = 5  # requests a minute
EVENTS_LIMIT = 6  # logs + events a minute


class ShiftedClock:
    """Stands in for the ``time`` module in ``core.ratelimit``: its first read places it ``lead``
    seconds before a minute turns; from then on it advances with the real clock."""

    def __init__(self, lead: float):
        self.lead = lead
        self.offset: float | None = None
        self.turns_at: float | None = None  # ``time.monotonic()`` when the shifted minute turns
        self.turns_at_wall: float | None = None  # the real ``time.time()`` then
        self._lock = threading.Lock()

    def time(self) -> float:
        real = time.time()
        with self._lock:
            if self.offset is None:
                self.offset = ((real // 60) + 2) * 60 - self.lead - real
                self.turns_at = time.monotonic() + self.lead
                self.turns_at_wall = real + self.lead
        return real + self.offset


@pytest.fixture
def limited(settings, live_tenant, monkeypatch):
    """``live_tenant``'s account with small contract limits, counted on a shifted clock."""
    ratelimit.reset()
    settings.RATE_LIMIT_SCALE = 1
    account = live_tenant.account
    account.plan_limits = {"api_requests_per_minute": API_LIMIT, "logs_events_per_minute": EVENTS_LIMIT}
    account.save(update_fields=["plan_limits"])

    def use_clock(lead: float) -> ShiftedClock:
        clock = ShiftedClock(lead)
        monkeypatch.setattr(ratelimit, "time", clock)
        return clock

    yield use_clock
    ratelimit.reset()


def test_the_client_waits_out_a_429_and_its_calls_succeed(asgi_server, live_tenant, run_prefect, limited):
    clock = limited(lead=4.0)
    burst = API_LIMIT + 3  # the limit, then three more that fit in the next minute
    run = run_prefect("rate_limit_burst.py", {"BURST": burst})

    assert run.returncode == 0, run.describe()
    result = run.result or {}
    assert "error" not in result and len(set(result.get("created", []))) == burst, run.describe()
    names = sorted(
        Flow.objects.unscoped().filter(workspace=live_tenant.workspace).values_list("name", flat=True)
    )
    assert names == sorted(f"burst-{i}" for i in range(burst))

    creates = [
        ex
        for ex in asgi_server.exchanges
        if ex.kind == "http" and ex.method == "POST" and ex.path.endswith("/flows/")
    ]
    statuses = [ex.status for ex in creates]
    # The limit's worth answered, then one refusal, then the refused call again and the rest.
    assert all(s in (200, 201) for s in statuses[:API_LIMIT]), run.trail
    assert statuses[API_LIMIT] == 429, run.trail
    assert all(s in (200, 201) for s in statuses[API_LIMIT + 1 :]) and len(statuses) == burst + 1, run.trail
    refused, retried = creates[API_LIMIT], creates[API_LIMIT + 1]
    assert set(refused.response_json()) == {"detail"}
    wait = int(refused.response_headers["retry-after"])
    assert 1 <= wait <= clock.lead + 1
    # The client came back no sooner than it was told to, and only after the minute turned.
    assert retried.started - refused.started >= wait - 0.05, run.trail
    assert retried.started >= clock.turns_at - 0.05
    assert retried.request_json() == refused.request_json()


def test_events_over_the_limit_wait_for_the_window_and_none_is_lost(
    asgi_server, live_tenant, run_prefect, limited
):
    clock = limited(lead=10.0)  # room for the client to start and send before the minute turns
    account = live_tenant.account
    # This minute's allowance is spent (and the shifted clock starts here).
    spent = retry_after_for(
        account_id=account.pk,
        plan=account.plan,
        plan_limits=account.plan_limits,
        bucket=Bucket.LOGS_EVENTS,
        amount=EVENTS_LIMIT,
    )
    assert spent is None
    count = EVENTS_LIMIT + 4
    run = run_prefect("rate_limit_events.py", {"EVENTS": count})
    assert run.returncode == 0, run.describe()
    sent = (run.result or {}).get("ids") or []
    assert "error" not in (run.result or {}) and len(set(sent)) == count and None not in sent, run.describe()

    socket = [ex for ex in asgi_server.exchanges if ex.kind == "websocket" and ex.path.endswith("/events/in")]
    assert [ex.status for ex in socket] == [101], run.trail
    assert socket[0].started < clock.turns_at - 0.5, "the client connected only after the minute turned"
    assert sum(len(ex.frames_in) for ex in socket) >= count, run.trail

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        stored = list(
            Event.objects.unscoped().filter(workspace=live_tenant.workspace).values_list("id", "received")
        )
        if len(stored) >= count:
            break
        time.sleep(0.2)
    assert sorted(str(i) for i, _ in stored) == sorted(sent), run.trail
    # Nothing was stored while the minute's allowance was spent.
    assert min(received.timestamp() for _, received in stored) >= clock.turns_at_wall - 0.05
