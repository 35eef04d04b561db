"""A restart or a terminated backend kills every idle pooled connection at once: the first lost one
has the pool check them all, so the next request gets a live connection without waiting."""

from __future__ import annotations

import time
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from core import dbpool


@pytest.fixture
def pool(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's")
    params = connection.get_connection_params()
    params.pop("pool", None)
    params.pop("cursor_factory", None)
    params.pop("context", None)
    pool = ConnectionPool(
        kwargs={**params, "autocommit": True}, min_size=3, max_size=3, timeout=10, open=True
    )
    pool.wait()
    # The test database is not pooled (tests connect per use): hand this pool to the sweep.
    monkeypatch.setattr(dbpool, "connections", {"default": SimpleNamespace(pool=pool)})
    yield pool
    pool.close()


def _kill_idle(pool: ConnectionPool) -> None:
    pids = []
    for _ in range(3):  # take every idle connection out to learn its backend, then give it back
        pids.append(pool.getconn())
    backends = [conn.info.backend_pid for conn in pids]
    for conn in pids:
        pool.putconn(conn)
    with psycopg.connect(**pool.kwargs) as killer:
        killer.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [backends])
    time.sleep(0.2)


@pytest.mark.django_db
def test_a_lost_connection_has_the_pool_replace_every_dead_idle_one(pool):
    _kill_idle(pool)
    dbpool.connection_lost()
    started = time.monotonic()
    with pool.connection(timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert time.monotonic() - started < 0.9  # psycopg_pool's own check waits 1 s after each dead one


@pytest.mark.django_db
def test_without_the_sweep_a_dead_idle_connection_is_handed_out(pool):
    _kill_idle(pool)
    conn = pool.getconn()  # unchecked, as configured: its request fails with a retryable 503
    try:
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        pool.putconn(conn)
