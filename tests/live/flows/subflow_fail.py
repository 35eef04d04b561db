"""A parent flow whose subflow raises: the subflow fails and so does the parent."""

from __future__ import annotations

from _common import main, note_run
from prefect import flow


@flow(name="live-sub-failing-child")
def child() -> None:
    raise ValueError("child went wrong")


@flow(name="live-sub-failing-parent")
def parent() -> None:
    note_run()
    child()


if __name__ == "__main__":
    main(parent)
