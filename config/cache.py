"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per thread and per context, and its Redis backend opens a connection
pool per cache object. Requests served in a thread pool each run in a fresh context, so every
request built a new pool and opened a new connection to Redis. Here the client (and its pool) is
shared by every cache object of the process with the same servers and options; redis-py's pool is
thread-safe and starts afresh in a forked child.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
