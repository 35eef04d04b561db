"""A flow that sends input to another flow run (``send_input``) and waits for its answers.
``argv[1]``: the receiving flow run's id; ``argv[2:]``: the messages."""

from __future__ import annotations

import sys
from uuid import UUID

from _common import SEEN, main, note_run
from prefect import flow
from prefect.input.run_input import receive_input, send_input


@flow(name="live-input-sender")
def sender(receiver_id: str, messages: list[str]) -> list[str]:
    note_run()
    for message in messages:
        send_input(message, flow_run_id=UUID(receiver_id))
    answers = []
    for answer in receive_input(str, timeout=60, poll_interval=0.5):
        answers.append(answer)
        if len(answers) == len(messages):
            break
    SEEN["answers"] = answers
    return answers


if __name__ == "__main__":
    main(sender, receiver_id=sys.argv[1], messages=sys.argv[2:])
