"""The smallest flow: used where only "could the client start a run at all" matters."""

from __future__ import annotations

from _common import SEEN, main, note_run
from prefect import flow


@flow(name="live-hello")
def hello() -> str:
    note_run()
    SEEN["value"] = "hello"
    return "hello"


if __name__ == "__main__":
    main(hello)
