"""Scenario 2: ``.map`` over 40 inputs plus 3 ``.submit``."""

from __future__ import annotations

from _common import SEEN, main, note_run
from prefect import flow, task


@task
def inc(x: int) -> int:
    return x + 1


@task
def double(x: int) -> int:
    return 2 * x


@flow(name="live-map40")
def map40(n: int = 40) -> int:
    note_run()
    mapped = [future.result() for future in inc.map(list(range(n)))]
    submitted = [double.submit(i) for i in range(3)]
    SEEN["value"] = sum(mapped) + sum(future.result() for future in submitted)
    return SEEN["value"]


if __name__ == "__main__":
    main(map40)
