"""Celery beat that runs once, however many beat processes are started.

Two beats (a rollout that overlaps, a second replica by mistake, a host that came back) would each
send every schedule entry: twice the scheduler ticks, twice the purges. ``SingleBeatScheduler`` sends
nothing unless it holds **the beat lock**:

- with ``REDIS_URL``: a Redis key set with ``SET NX PX`` holding this beat's id, renewed every tick
  (a compare-and-renew script, so a beat never renews a lock another took over) and expiring
  ``BEAT_LOCK_TTL_SECONDS`` after the holder stops renewing it;
- without (the embedded default, one machine): an exclusive ``flock`` on a file in ``VAR_DIR``,
  released by the kernel when the holder exits.

A beat without the lock waits and tries again every few seconds, as a hot standby. When it takes
the lock over it starts its schedule afresh (every entry's last run is now): nothing the old holder
already sent is sent again; an entry that fell due in the gap runs at its next time.

Each tick sets ``controlplane_beat_last_tick_timestamp_seconds`` and ``controlplane_beat_lock_held``,
and each entry sent ``controlplane_beat_entry_last_sent_timestamp_seconds{entry}`` (served on
``METRICS_PORT``, ``config.metrics_server``): an alert on a stale tick, or on a lock no beat holds,
catches a beat that stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path

from celery.beat import PersistentScheduler
from django.conf import settings

from core import metrics

logger = logging.getLogger(__name__)

LOCK_KEY = "controlplane:beat-lock"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisBeatLock:
    def __init__(self, url: str, ttl: float):
        import redis  # only with REDIS_URL

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.errors = (redis.RedisError, OSError)
        self.ttl_ms = int(ttl * 1000)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = self.client.register_script(_RENEW)

    def acquire(self) -> bool:
        """Take or keep the lock; False when another beat holds it (or Redis does not answer)."""
        try:
            if self._renew(keys=[LOCK_KEY], args=[self.holder, self.ttl_ms]):
                return True
            return bool(self.client.set(LOCK_KEY, self.holder, nx=True, px=self.ttl_ms))
        except self.errors as error:
            logger.warning("beat lock: Redis did not answer (%s); sending nothing", error)
            return False

    def release(self) -> None:
        try:
            if self.client.get(LOCK_KEY) == self.holder.encode():
                self.client.delete(LOCK_KEY)
        except self.errors:
            pass


class FileBeatLock:
    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        import fcntl  # POSIX: the embedded default's platforms

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for as long as the lock is)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def beat_lock():
    ttl = settings.BEAT_LOCK_TTL_SECONDS
    if settings.REDIS_URL:
        return RedisBeatLock(settings.REDIS_URL, ttl)
    return FileBeatLock(Path(settings.VAR_DIR) / "celerybeat.lock")


class SingleBeatScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs):
        self.lock = beat_lock()
        self.holding = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        retry = max(0.5, settings.BEAT_LOCK_TTL_SECONDS / 3)
        if not self.lock.acquire():
            if self.holding:
                logger.warning("beat lock lost: another beat sends the schedule now")
            self.holding = False
            metrics.record_beat_tick(at=time.time(), holding=False)
            return retry
        metrics.record_beat_tick(at=time.time(), holding=True)
        if not self.holding:
            logger.info("beat lock taken: this beat sends the schedule")
            self.holding = True
            now = self.app.now()
            for entry in self.schedule.values():
                entry.last_run_at = now
        # Come back before the lock would expire, even when nothing is due sooner.
        return min(super().tick(*args, **kwargs), retry)

    def apply_async(self, entry, *args, **kwargs):
        result = super().apply_async(entry, *args, **kwargs)
        metrics.record_beat_sent(entry.name, time.time())  # sent: a failure raised above
        return result

    def close(self):
        try:
            super().close()
        finally:
            if self.holding:
                self.lock.release()
                self.holding = False
