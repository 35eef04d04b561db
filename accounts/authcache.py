"""A short-lived memo of who an API key is and what it may do in a workspace.

Every API call would otherwise spend four queries (the key, the account, the workspace, the grants)
before its own work; workers poll and clients set states many times a second with the same key.
Entries live in the process for ``AUTH_CACHE_SECONDS`` at most and are dropped at once, in every
process, when anything they were derived from changes: a save or delete of a key, user, service
account, membership, team, team member, custom role, grant, default role, account or
workspace bumps a generation number kept in the shared cache
(Redis when configured), which every process compares at least once a second (at once in the process
that made the change). Code that changes those rows with
``QuerySet.update()`` (which sends no signal) calls :func:`authz_changed` itself.

A key past its expiry is refused on a cache hit too (the expiry is checked on every use); a revoked
key, a deactivated user or a removed grant is refused by the next request in the process that made
the change, and within about a second in every other.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

_GENERATION_KEY = "authz:generation"
_MAX_ENTRIES = 10_000
SHARED_GENERATION_INTERVAL = 1.0

_lock = threading.Lock()
_refresh_lock = threading.Lock()
_entries: OrderedDict[tuple, tuple[float, Any, Any]] = OrderedDict()
_local_generation = 0


def _ttl() -> float:
    return float(getattr(settings, "AUTH_CACHE_SECONDS", 0) or 0)


def _shared_generation() -> Any:
    try:
        return cache.get(_GENERATION_KEY)
    except Exception:  # the cache is down: serve from the database, never from a stale memo
        return None


def _read_shared_generation() -> Any:
    shared = _shared_generation()
    if shared is None:
        # Not set yet (or evicted): set it so every process agrees from now on.
        try:
            cache.add(_GENERATION_KEY, 1, timeout=None)
        except Exception:
            return None
        shared = _shared_generation()
    return shared


_shared_seen: tuple[float, Any] = (float("-inf"), None)
_shared_failed_at = float("-inf")  # when the cache last failed to give the shared generation


def _generation() -> tuple[int, Any] | None:
    """This process's generation and the shared one. The shared one is read at most every
    ``SHARED_GENERATION_INTERVAL`` seconds, so a change made in another process reaches this one
    within that time (a change made here drops the memo at once). None: the cache cannot be read,
    so nothing may be served from memory."""
    read_at, shared = _shared_seen
    if shared is None or time.monotonic() - read_at >= SHARED_GENERATION_INTERVAL:
        # One thread reads it; the others go on with the value read a moment ago meanwhile.
        if refresh_shared_generation() is False:
            return None
        read_at, shared = _shared_seen
        if shared is None:
            return None
    return (_local_generation, shared)


def shared_generation_due(within: float) -> bool:
    """Is the shared generation to be read again within ``within`` seconds? (A path that answers
    from memory refreshes it ahead with ``refresh_shared_generation`` instead of missing.)"""
    read_at, shared = _shared_seen
    return shared is None or time.monotonic() - read_at >= SHARED_GENERATION_INTERVAL - within


def refresh_shared_generation() -> bool | None:
    """Read the shared generation now: True when read, False when the cache could not be read,
    None when another thread is reading it."""
    global _shared_seen, _shared_failed_at
    now = time.monotonic()
    if now - _shared_failed_at < SHARED_GENERATION_INTERVAL:
        # The cache just failed to answer: the database answers meanwhile, and no request waits
        # on the cache's timeout again until the interval has passed.
        return False
    if not _refresh_lock.acquire(blocking=False):
        return None
    try:
        shared = _read_shared_generation()
        if shared is None:
            _shared_failed_at = time.monotonic()
            return False
        _shared_seen = (now, shared)
        return True
    finally:
        _refresh_lock.release()


def memo(kind: str, key: tuple, load: Callable[[], Any]) -> Any:
    """``load()``, remembered under ``(kind, key)`` while the generation holds and for at most the
    configured seconds. ``None`` results are not remembered (a miss is asked again next time)."""
    ttl = _ttl()
    if ttl <= 0:
        return load()
    generation = _generation()
    if generation is None:
        return load()
    full_key = (kind, *key)
    now = time.monotonic()
    with _lock:
        entry = _entries.get(full_key)
        if entry is not None:
            expires, entry_generation, value = entry
            if expires > now and entry_generation == generation:
                _entries.move_to_end(full_key)
                return value
            del _entries[full_key]
    value = load()
    if value is not None:
        with _lock:
            _entries[full_key] = (now + ttl, generation, value)
            while len(_entries) > _MAX_ENTRIES:
                _entries.popitem(last=False)
    return value


MISSING = object()


def peek(kind: str, key: tuple) -> Any:
    """What ``memo`` would answer from memory for ``(kind, key)`` right now, or ``MISSING`` when it
    would have to do any I/O for it (nothing remembered, expired, or the shared generation due to
    be read again). For paths that answer from memory only and hand everything else to the full
    path."""
    ttl = _ttl()
    if ttl <= 0:
        return MISSING
    read_at, shared = _shared_seen
    now = time.monotonic()
    if shared is None or now - read_at >= SHARED_GENERATION_INTERVAL:
        return MISSING
    entry = _entries.get((kind, *key))
    if entry is None:
        return MISSING
    expires, entry_generation, value = entry
    if expires <= now or entry_generation != (_local_generation, shared):
        return MISSING
    return value


def token_digest(token: str) -> str:
    """What the memo is keyed by: never the key itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def authz_changed() -> None:
    """Drop every memo, here at once and in the other processes from their next lookup. Called on
    the change and again after the transaction commits (so no process re-reads the old rows in
    between and keeps them)."""
    _bump()
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        transaction.on_commit(_bump)


def _bump() -> None:
    global _local_generation, _shared_seen
    with _lock:
        _local_generation += 1
        _entries.clear()
        _shared_seen = (float("-inf"), None)
    try:
        try:
            cache.incr(_GENERATION_KEY)
        except ValueError:  # not set (evicted, or never read): any new value differs from the memos'
            cache.set(_GENERATION_KEY, time.time_ns(), timeout=None)
    except Exception:
        # The cache is down: lookups then find no generation and read the database (see memo()).
        logger.warning("could not publish an authorization change to the shared cache", exc_info=True)


def clear() -> None:
    """Forget every memo in this process (tests)."""
    global _shared_seen, _shared_failed_at
    with _lock:
        _entries.clear()
        _shared_seen = (float("-inf"), None)
        _shared_failed_at = float("-inf")


def _on_change(sender, **kwargs) -> None:
    authz_changed()


def connect_signals() -> None:
    # Called from AccountsConfig.ready(). The models are imported here, not at the top: this module
    # is imported while the app registry loads (by accounts.apps and the key lookup), before models
    # may be.
    from accounts.api_keys.models import ApiKey
    from accounts.models import (
        AccountMembership,
        CustomRole,
        IpAllowlistEntry,
        ServiceAccount,
        Team,
        TeamMember,
        User,
        WorkspaceDefaultRole,
        WorkspaceRoleGrant,
    )
    from tenants.models import Account, Workspace

    models = (
        ApiKey,
        User,
        ServiceAccount,
        AccountMembership,
        WorkspaceRoleGrant,
        Team,
        TeamMember,
        CustomRole,
        WorkspaceDefaultRole,
        IpAllowlistEntry,
        Account,
        Workspace,
    )
    for model in models:
        post_save.connect(_on_change, sender=model, dispatch_uid=f"authcache-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"authcache-delete-{model.__name__}")
