"""What a lost database connection does to the connection pool.

A restart, a failover or ``pg_terminate_backend`` kills every idle connection of the pool at once.
The pool hands connections out unchecked (``config.settings``: psycopg_pool's own check sleeps
between the dead ones it finds, 1 s, 2 s, 4 s…, and requests hung for up to the pool's timeout), so a
dead one fails its request with a retryable 503. ``connection_lost`` then has the pool check all its
idle connections at once, discarding the dead and opening replacements, so the retry gets a live
one. Django returns the failed request's own connection to the pool at the end of the request, and
the pool discards it there.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

logger = logging.getLogger(__name__)

_sweeping = threading.Lock()


def connection_lost() -> None:
    """Check every idle pooled connection now (one sweep at a time; a no-op without a pool)."""
    pool = getattr(connections["default"], "pool", None)
    if pool is None or not _sweeping.acquire(blocking=False):
        return
    try:
        pool.check()
    except Exception:  # only an optimisation: a dead connection still fails its request retryably
        logger.exception("checking the pool's idle connections failed")
    finally:
        _sweeping.release()
