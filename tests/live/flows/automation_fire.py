"""A reactive automation made by the client (``Automation(...).create()``) that runs a deployment
when a custom event is emitted, then the event sent with ``emit_event`` (the client's events
websocket). ``AUTOMATION_DEPLOYMENT_ID`` is the deployment; ``EMIT_ONLY=1`` only emits. Prints one
``RESULT {json}``."""

from __future__ import annotations

import json
import os
from uuid import UUID

from prefect.automations import Automation
from prefect.events import emit_event
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.worker import EventsWorker

if __name__ == "__main__":
    out: dict = {}
    try:
        if not os.environ.get("EMIT_ONLY"):
            automation = Automation(
                name="on-order",
                trigger=EventTrigger(
                    expect={"shop.order.placed"},
                    match={"prefect.resource.id": "shop.order.*"},
                    posture=Posture.Reactive,
                    threshold=1,
                ),
                actions=[
                    RunDeployment(
                        source="selected",
                        deployment_id=UUID(os.environ["AUTOMATION_DEPLOYMENT_ID"]),
                        parameters={"who": "{{ event.resource['prefect.resource.name'] }}"},
                    )
                ],
            ).create()
            out["id"] = str(automation.id)
        event = emit_event(
            event="shop.order.placed",
            resource={"prefect.resource.id": "shop.order.42", "prefect.resource.name": "order 42"},
        )
        out["event_id"] = str(event.id) if event else None
        EventsWorker.drain_all()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
