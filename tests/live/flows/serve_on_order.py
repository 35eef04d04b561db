"""``flow.serve(triggers=[DeploymentEventTrigger(…)])``: a served deployment whose own automation
runs it when an order is placed (a custom event), with the order's quantity as ``x``. Each run
appends ``{"flow_run_id", "x", "pid"}`` to ``MARKER`` (a JSON line) when it executes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow
from prefect.events import DeploymentEventTrigger


@flow(name="fulfil-order")
def fulfil_order(x: int = 0) -> int:
    from prefect.runtime import flow_run

    line = {"flow_run_id": str(flow_run.get_id()), "x": x, "pid": os.getpid()}
    with Path(os.environ["MARKER"]).open("a") as marker:
        marker.write(json.dumps(line) + "\n")
    return x


if __name__ == "__main__":
    fulfil_order.serve(
        name="served",
        triggers=[
            DeploymentEventTrigger(
                name="served-on-order",
                expect={"shop.order.placed"},
                match={"prefect.resource.id": "shop.order.*"},
                parameters={"x": "{{ event.payload.quantity }}"},
            )
        ],
    )
