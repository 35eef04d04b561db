"""Settings for the test suite: the same environment-driven base, with fast hashing."""

from __future__ import annotations

import os

# Tests never need a real secret; DATABASE_URL may point them at PostgreSQL.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789abcdef")
# Test databases are created and dropped around the run, which a connection pool would keep open;
# tests (and their live-server threads) connect per use instead.
os.environ.setdefault("DATABASE_POOL", "false")
# Rate limits and throttles are off except in the tests that set them (tests/access/test_limits.py).
os.environ.setdefault("RATE_LIMIT_SCALE", "0")
os.environ.setdefault("AUTH_THROTTLE_FAILURES", "0")

from config.settings.base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# SQLite test databases live in a file, so a live ASGI server running in a thread of the test
# process (tests/live) sees the same data as the test.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # One file per test process, so concurrent test runs never share (or delete) each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405

# Test processes run side by side (pytest-xdist) against one Redis: each keeps its cache keys apart,
# so one worker's change (an access-memo generation bump, a rate-limit bucket) never reaches another's
# tests.
if "default" in CACHES and CACHES["default"]["BACKEND"].endswith("RedisCache"):  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"  # noqa: F405
