"""``EVENTS`` custom events sent with ``emit_event`` over the client's events websocket
(``/events/in``), then drained. Prints one ``RESULT {json}`` with the ids sent."""

from __future__ import annotations

import json
import os

from prefect.events import emit_event
from prefect.events.worker import EventsWorker

if __name__ == "__main__":
    out: dict = {"ids": []}
    try:
        for i in range(int(os.environ["EVENTS"])):
            event = emit_event(event="shop.order.placed", resource={"prefect.resource.id": f"shop.order.{i}"})
            out["ids"].append(str(event.id) if event else None)
        EventsWorker.drain_all()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
