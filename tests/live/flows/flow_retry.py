"""Scenario 4: a flow with ``retries=1`` whose first attempt fails."""

from __future__ import annotations

from _common import SEEN, main, note_run
from prefect import flow


@flow(name="live-flow-retry", retries=1, retry_delay_seconds=1)
def flow_retry() -> str:
    note_run()
    if SEEN["attempts"] == 1:
        raise RuntimeError("live-flow-retry: attempt 1 fails")
    SEEN["value"] = "ok"
    return "ok"


if __name__ == "__main__":
    main(flow_retry)
