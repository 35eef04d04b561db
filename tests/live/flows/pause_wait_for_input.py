"""A flow that pauses for typed input (``pause_flow_run(wait_for_input=…)``) and goes on with what
it was given. ``argv[1]``: the pause timeout in seconds."""

from __future__ import annotations

import sys

from _common import SEEN, main, note_run
from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput


class Approval(RunInput):
    approved: bool
    note: str = ""


@flow(name="live-pause-for-input")
def wait_for_approval(timeout: int) -> str:
    note_run()
    answer = pause_flow_run(wait_for_input=Approval, timeout=timeout, poll_interval=1)
    SEEN["approved"] = answer.approved
    SEEN["note"] = answer.note
    get_run_logger().info("resumed with approved=%s note=%s", answer.approved, answer.note)
    return answer.note


if __name__ == "__main__":
    main(wait_for_approval, timeout=int(sys.argv[1]))
