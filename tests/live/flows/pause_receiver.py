"""A flow that receives input sent to it (``receive_input``) and answers each sender
(``respond``). ``argv[1]``: how many inputs to wait for."""

from __future__ import annotations

import sys

from _common import SEEN, main, note_run
from prefect import flow
from prefect.input.run_input import receive_input


@flow(name="live-input-receiver")
def receiver(expected: int) -> list[str]:
    note_run()
    received = []
    for item in receive_input(str, timeout=60, poll_interval=0.5, with_metadata=True):
        received.append(item.value)
        SEEN.setdefault("senders", []).append(item.metadata.sender)
        item.respond(f"ack: {item.value}")
        if len(received) == expected:
            break
    SEEN["received"] = received
    return received


if __name__ == "__main__":
    main(receiver, expected=int(sys.argv[1]))
