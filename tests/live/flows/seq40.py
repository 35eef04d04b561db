"""Scenario 1: a flow calling 40 lightweight tasks in sequence, logging from the flow and each task."""

from __future__ import annotations

from _common import SEEN, main, note_run
from prefect import flow, get_run_logger, task


@task
def inc(x: int) -> int:
    get_run_logger().info("inc x=%s", x)
    return x + 1


@flow(name="live-seq40")
def seq40(n: int = 40) -> int:
    note_run()
    logger = get_run_logger()
    logger.info("seq40 starting")
    total = 0
    for _ in range(n):
        total = inc(total)
    logger.info("seq40 done total=%s", total)
    SEEN["value"] = total
    return total


if __name__ == "__main__":
    main(seq40)
