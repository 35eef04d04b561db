"""Scenario 5: a flow that always fails."""

from __future__ import annotations

from _common import main, note_run
from prefect import flow

MESSAGE = "live-flow-fail: the reactor is on fire (7f3a)"


@flow(name="live-flow-fail")
def flow_fail() -> None:
    note_run()
    raise RuntimeError(MESSAGE)


if __name__ == "__main__":
    main(flow_fail)
