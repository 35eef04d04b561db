"""A flow calling a subflow that calls a subflow (``return_state=True`` on the inner call), plus a
task: the parent task runs are created over HTTP (``POST task_runs/``)."""

from __future__ import annotations

import os

from _common import SEEN, main, note_run
from prefect import flow, task


@task
def double(x: int) -> int:
    return x * 2


@flow(name="live-sub-inner")
def inner(x: int) -> int:
    return x + 1


@flow(name="live-sub-middle")
def middle(x: int) -> int:
    state = inner(x, return_state=True)
    SEEN["inner_state"] = state.type.value
    return state.result() * 10


@flow(name="live-sub-outer")
def outer(x: int) -> int:
    note_run()
    value = middle(double(x))
    SEEN["value"] = value
    return value


if __name__ == "__main__":
    main(outer, x=int(os.environ.get("SUBFLOW_X", "1")))
