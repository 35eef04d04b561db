"""Scenario 3: a task with ``retries=1`` that fails on its first attempt."""

from __future__ import annotations

from _common import SEEN, main, note_run
from prefect import flow, task

_attempts = {"n": 0}


@task(retries=1, retry_delay_seconds=0)
def flaky() -> str:
    _attempts["n"] += 1
    if _attempts["n"] == 1:
        raise ValueError("live-task-retry: first attempt fails")
    return "ok"


@flow(name="live-task-retry")
def task_retry() -> str:
    note_run()
    SEEN["value"] = flaky()
    SEEN["task_attempts"] = _attempts["n"]
    return SEEN["value"]


if __name__ == "__main__":
    main(task_retry)
