"""Fixed-window counters: the rate limits by plan and the throttles of sign-in and credentials.

A counter is named by a key (``"api:<account id>"``, ``"signin-ip:<address>"``) and counts within
windows of ``window`` seconds aligned on the clock (a minute starting at :00). Two stores:

- **Redis** (``REDIS_URL`` set): ``INCRBY`` and ``EXPIRE`` in one pipeline, one round trip, so every
  process of every host counts against the same number. To keep the hot path cheap a process
  reserves a few units at a time (``batch``) and spends them from memory: a request costs a Redis
  round trip once every ``batch`` requests. A process may leave up to ``batch - 1`` reserved units
  unspent when the window turns, so an account can be refused slightly before its exact limit,
  never after it.
- **In the process** (the embedded default, one web process): a dict under a lock.

Redis that does not answer lets the request through (logged): a limit is a defence, not a reason
for the web tier to stop serving.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "ratelimit:"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int  # the window's count after this charge (as far as this process knows)
    retry_after: int  # seconds until the window turns (at least 1)


def _window(now: float, window: int) -> tuple[int, int]:
    index = int(now // window)
    retry_after = max(1, math.ceil((index + 1) * window - now))
    return index, retry_after


class _Local:
    """Counters in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def incr(self, key: str, index: int, amount: int, window: int) -> int:
        with self._lock:
            if len(self._counts) > 10_000:  # forget windows that have passed
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= index}
            total = self._counts.get((key, index), 0) + amount
            self._counts[(key, index)] = total
            return total

    def get(self, key: str, index: int) -> int:
        with self._lock:
            return self._counts.get((key, index), 0)


class _Redis:
    def __init__(self, url: str):
        import redis  # only with REDIS_URL: the embedded default never loads the client

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.errors = (redis.RedisError, OSError)

    def incr(self, key: str, index: int, amount: int, window: int) -> int | None:
        name = f"{PREFIX}{key}:{index}"
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.incrby(name, amount)
            pipe.expire(name, window * 2)
            total, _ = pipe.execute()
            return int(total)
        except self.errors as error:
            logger.warning("rate limit store unavailable; letting the request through: %s", error)
            return None

    def get(self, key: str, index: int) -> int | None:
        try:
            value = self.client.get(f"{PREFIX}{key}:{index}")
        except self.errors as error:
            logger.warning("rate limit store unavailable; letting the request through: %s", error)
            return None
        return int(value or 0)


class Limiter:
    def __init__(self, redis_url: str | None):
        self._local = _Local()
        self._store = _Redis(redis_url) if redis_url else self._local
        self._lock = threading.Lock()
        # Units reserved from the shared store and not yet spent: (key, window index) -> units.
        self._reserved: dict[tuple[str, int], int] = {}
        self._refused: dict[str, int] = {}  # key -> the window index known to be exhausted

    @property
    def shared(self) -> bool:
        return self._store is not self._local

    def charge(
        self,
        key: str,
        *,
        limit: int,
        amount: int = 1,
        window: int = 60,
        batch: int = 1,
        now: float | None = None,
    ) -> Verdict:
        """Count ``amount`` units against ``key``; refused when the window's count would pass
        ``limit``. With a shared store up to ``batch`` units are reserved at once."""
        now = time.time() if now is None else now
        index, retry_after = _window(now, window)
        if self._refused.get(key) == index:
            return Verdict(False, limit + amount, retry_after)
        if self.shared and batch > 1:
            with self._lock:
                left = self._reserved.get((key, index), 0)
                if left >= amount:
                    self._reserved[(key, index)] = left - amount
                    return Verdict(True, -1, retry_after)
        reserve = max(amount, batch) if self.shared else amount
        total = self._store.incr(key, index, reserve, window)
        if total is None:  # the store did not answer
            return Verdict(True, -1, retry_after)
        if total <= limit:
            if reserve > amount:
                with self._lock:
                    if len(self._reserved) > 10_000:
                        self._reserved = {k: v for k, v in self._reserved.items() if k[1] >= index}
                    self._reserved[(key, index)] = self._reserved.get((key, index), 0) + reserve - amount
            return Verdict(True, total, retry_after)
        if total - reserve + amount <= limit:
            # The reservation overran the limit but this charge fits within it.
            return Verdict(True, total - reserve + amount, retry_after)
        self._refused[key] = index
        return Verdict(False, total, retry_after)

    def charge_from_memory(
        self, key: str, *, limit: int, amount: int = 1, window: int = 60, now: float | None = None
    ) -> bool | None:
        """True when ``amount`` units were spent without I/O (from what this process reserved, or
        from its own counters without a shared store); None when the full ``charge`` must decide."""
        now = time.time() if now is None else now
        index, _ = _window(now, window)
        if not self.shared:
            return (
                True if self.charge(key, limit=limit, amount=amount, window=window, now=now).allowed else None
            )
        with self._lock:
            left = self._reserved.get((key, index), 0)
            if left >= amount and self._refused.get(key) != index:
                self._reserved[(key, index)] = left - amount
                return True
        return None

    def count(self, key: str, *, window: int, now: float | None = None) -> int:
        """The window's count of ``key`` (0 when the store does not answer)."""
        now = time.time() if now is None else now
        index, _ = _window(now, window)
        return self._store.get(key, index) or 0

    def add(self, key: str, *, amount: int = 1, window: int, now: float | None = None) -> int:
        """Add ``amount`` to ``key``'s window and return the new count (0 when the store does not
        answer)."""
        now = time.time() if now is None else now
        index, _ = _window(now, window)
        self._refused.pop(key, None)
        return self._store.incr(key, index, amount, window) or 0

    def retry_after(self, *, window: int, now: float | None = None) -> int:
        return _window(time.time() if now is None else now, window)[1]


_limiter: Limiter | None = None
_limiter_url: str | None = None
_limiter_lock = threading.Lock()


def limiter() -> Limiter:
    """The process's limiter, on Redis when ``REDIS_URL`` is set."""
    global _limiter, _limiter_url
    url = settings.REDIS_URL or None
    if _limiter is None or _limiter_url != url:
        with _limiter_lock:
            if _limiter is None or _limiter_url != url:
                _limiter, _limiter_url = Limiter(url), url
    return _limiter


def reset() -> None:
    """Forget the process's limiter (tests)."""
    global _limiter
    _limiter = None
