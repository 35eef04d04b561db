"""The configured cache and channel layer work (Redis when REDIS_URL is set)."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache


def test_cache_round_trip():
    key = f"test:{uuid.uuid4()}"
    cache.set(key, {"a": 1}, 30)
    assert cache.get(key) == {"a": 1}
    cache.delete(key)
    assert cache.get(key) is None


def test_channel_layer_round_trip():
    layer = get_channel_layer()

    async def exchange():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "test.message", "text": "hello"})
        return await layer.receive(channel)

    assert async_to_sync(exchange)() == {"type": "test.message", "text": "hello"}


def test_redis_is_used_when_configured():
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: the embedded default uses in-process layers")
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    assert "Redis" in type(get_channel_layer()).__name__
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL


def test_channel_layer_survives_a_receive_longer_than_the_redis_read_timeout():
    """A subscriber waits on the layer for longer than redis-py's default 5 s read timeout
    without the receive blowing up (it did, dropping every idle /events/out socket)."""
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    import asyncio

    layer = get_channel_layer()

    async def wait_then_receive():
        channel = await layer.new_channel()

        async def send_later():
            await asyncio.sleep(6.5)
            await layer.send(channel, {"type": "late.message"})

        sender = asyncio.create_task(send_later())
        message = await layer.receive(channel)
        await sender
        return message

    assert async_to_sync(wait_then_receive)() == {"type": "late.message"}


def test_cache_objects_of_a_process_share_one_redis_client():
    """Django makes a cache object per thread and per request context; each would otherwise open
    its own connection pool (a new Redis connection per request in the server's thread pool)."""
    from config.cache import RedisCache

    first = RedisCache("redis://127.0.0.1:6379/9", {})
    second = RedisCache("redis://127.0.0.1:6379/9", {})
    other = RedisCache("redis://127.0.0.1:6379/8", {})
    assert first is not second and first._cache is second._cache
    assert other._cache is not first._cache
