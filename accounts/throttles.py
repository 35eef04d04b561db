"""Throttles of the doors a credential is guessed at: password sign-in, API key authentication,
SCIM token authentication and invitation acceptance.

Each door counts **failures** in windows of ``AUTH_THROTTLE_WINDOW_SECONDS`` (on Redis when
``REDIS_URL`` is set, ``core.ratelimit``), twice: per client address (``AUTH_THROTTLE_FAILURES``)
and per account or person (five times that). Past a limit the door answers 429 with
``Retry-After`` until the window turns, and the first refusal of each window is one audit event
(``auth.throttled``):

- **per address**: everything at that door from that address is refused for the rest of the window;
- **per account or person**: sign-in and invitation acceptance are refused from every address for the
  rest of the window (at most one window: a correct password from another address waits at most that
  long); for API keys and SCIM tokens (random and long, not guessable) only failures are answered 429,
  so a correct key from another address is never refused.

A door that succeeds costs no counter round trip unless its address was already refused in this
process's memory (API keys: the hot path stays free).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

from audit import events
from audit.actors import SYSTEM
from audit.services import audit_record
from core.errors import NotFound, TooManyRequests
from core.ratelimit import limiter
from tenants.selectors import resolve_account

logger = logging.getLogger(__name__)

ACCOUNT_FACTOR = 5  # the per-account (per-person) limit is this many times the per-address one


class Door(enum.StrEnum):
    SIGN_IN = "sign-in"
    API_KEY = "api-key"
    SCIM = "scim"
    INVITATION = "invitation"


# Doors whose per-account limit refuses everyone (a guessable secret); the others refuse only failures.
_ACCOUNT_REFUSES_ALL = frozenset({Door.SIGN_IN, Door.INVITATION})

_known_lock = threading.Lock()
_known: dict[str, int] = {}  # counter key -> the window index this process saw it exhausted in


def _limits() -> tuple[int, int, int] | None:
    per_address = settings.AUTH_THROTTLE_FAILURES
    if per_address <= 0:
        return None
    return per_address, per_address * ACCOUNT_FACTOR, settings.AUTH_THROTTLE_WINDOW_SECONDS


def _keys(door: Door, address: str | None, subject: str | None) -> tuple[str, str]:
    return f"throttle:{door}:ip:{address or '-'}", f"throttle:{door}:sub:{(subject or '-').lower()[:200]}"


def _index(window: int) -> int:
    return int(time.time() // window)


def _known_exhausted(key: str, window: int) -> bool:
    with _known_lock:
        return _known.get(key) == _index(window)


def _remember_exhausted(key: str, window: int) -> None:
    with _known_lock:
        if len(_known) > 10_000:
            _known.clear()
        _known[key] = _index(window)


def _refusal(door: Door, window: int) -> TooManyRequests:
    wait = limiter().retry_after(window=window)
    return TooManyRequests(f"Too many failed attempts; retry in {wait} seconds.", retry_after=wait)


def check(door: Door, *, address: str | None, subject: str | None, from_memory: bool = False) -> None:
    """Raise 429 when ``address`` (or, at doors that refuse everyone, ``subject``) is past its limit
    in this window. ``from_memory``: only what this process already knows, no counter read."""
    limits = _limits()
    if limits is None:
        return
    per_address, per_subject, window = limits
    address_key, subject_key = _keys(door, address, subject)
    keys = [(address_key, per_address)]
    if door in _ACCOUNT_REFUSES_ALL:
        keys.append((subject_key, per_subject))
    for key, limit in keys:
        if _known_exhausted(key, window):
            raise _refusal(door, window)
        if not from_memory and limiter().count(key, window=window) >= limit:
            _remember_exhausted(key, window)
            raise _refusal(door, window)


def failed(
    door: Door, *, address: str | None, subject: str | None, account=None, account_ref: str | None = None
) -> None:
    """Count a failure; raise 429 when it reaches a limit (or one was already reached), and record
    the audit event when this failure is the one that reached it (once a window per counter)."""
    limits = _limits()
    if limits is None:
        return
    per_address, per_subject, window = limits
    address_key, subject_key = _keys(door, address, subject)
    refused = False
    for key, limit, scope, named in (
        (address_key, per_address, "address", address or "-"),
        (subject_key, per_subject, "account", subject or "-"),
    ):
        count = limiter().add(key, window=window)
        if count >= limit:
            refused = True
            _remember_exhausted(key, window)
        if count == limit:
            if account is None and account_ref:
                account = resolve_account(account_ref)  # once a window: the record names the account
            _audit(door, scope=scope, subject=named, failures=count, window=window, account=account)
    if refused:
        raise _refusal(door, window)


@contextmanager
def attempt(door: Door, *, address: str | None, subject: str | None, account=None) -> Iterator[None]:
    """Around an attempt whose failure raises ``NotFound`` (a wrong token): check first, count the
    failure after (a 429 instead of the 404 once a limit is reached)."""
    check(door, address=address, subject=subject)
    try:
        yield
    except NotFound:
        failed(door, address=address, subject=subject, account=account)
        raise


def _audit(door: Door, *, scope: str, subject: str, failures: int, window: int, account) -> None:
    try:
        with transaction.atomic():
            audit_record(
                event=events.AUTH_THROTTLED,
                actor=SYSTEM,
                account=account,
                payload={
                    "door": str(door),
                    "scope": scope,
                    "subject": subject,
                    "failures": failures,
                    "window_seconds": window,
                },
            )
    except Exception:  # the refusal stands even when its record cannot be written
        logger.exception("Recording a throttle failed")


def reset_memory() -> None:
    """Forget what this process remembers (tests)."""
    with _known_lock:
        _known.clear()
