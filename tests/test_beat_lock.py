"""Beat runs once: two real ``celery beat`` processes, one sends the schedule; when it dies the other
takes over within the lock's time to live (``config.beat``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from config.beat import FileBeatLock

ROOT = Path(__file__).resolve().parent.parent
# Every five seconds (config.celery): what one beat sends about twice in ten seconds.
FIVE_SECOND_TASKS = ("orchestration.mark_late_runs", "orchestration.fail_expired_pauses")


def test_file_lock_admits_one_holder(tmp_path):
    first, second = FileBeatLock(tmp_path / "beat.lock"), FileBeatLock(tmp_path / "beat.lock")
    assert first.acquire() and first.acquire()  # held: acquiring again keeps it
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def _beat(tmp_path: Path, name: str, redis_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "beat-test-secret-key-0123456789abcdef0123456789",
        "BEAT_LOCK_TTL_SECONDS": "3",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(tmp_path / f"{name}.db"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_for_holder(tmp_path: Path, names, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in names:
            if "beat lock taken" in (tmp_path / f"{name}.log").read_text():
                return name
        time.sleep(0.2)
    raise AssertionError(f"no beat of {names} took the lock within {timeout} s")


def _sent(client) -> Counter:
    """Task names of the messages waiting in the default queue."""
    return Counter(json.loads(raw)["headers"]["task"] for raw in client.lrange("celery", 0, -1))


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI's Redis run)")
def test_two_beats_send_each_entry_once_and_a_standby_takes_over(tmp_path):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("celery", "controlplane:beat-lock")
    beats = [_beat(tmp_path, "a", settings.REDIS_URL), _beat(tmp_path, "b", settings.REDIS_URL)]
    try:
        _wait_for_holder(tmp_path, ("a", "b"))
        client.delete("celery")  # count from the moment one holds the lock
        time.sleep(11)
        sent = _sent(client)
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("a", "b")}
        holders = [name for name, text in logs.items() if "beat lock taken" in text]
        assert len(holders) == 1, logs
        for task in FIVE_SECOND_TASKS:
            # One beat: once every five seconds, twice in 11 s; two beats would send it four times.
            assert 1 <= sent[task] <= 3, (task, sent, logs)
        # The holder dies without releasing (SIGKILL): the standby takes over once the lock expires.
        holder = beats[0] if holders == ["a"] else beats[1]
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        standby = "b" if holders == ["a"] else "a"
        _wait_for_holder(tmp_path, (standby,), timeout=10)  # the lock's 3 s, and a retry
        client.delete("celery")
        time.sleep(11)
        after = _sent(client)
        for task in FIVE_SECOND_TASKS:
            assert 1 <= after[task] <= 3, (task, after)
    finally:
        for beat in beats:
            if beat.poll() is None:
                beat.terminate()
                try:
                    beat.wait(10)
                except subprocess.TimeoutExpired:
                    beat.kill()
        client.delete("celery", "controlplane:beat-lock")
