"""A deployment's own triggers, made the way ``flow.serve(triggers=[…])`` and ``flow.deploy``
make them (``RunnerDeployment.apply``: delete what the deployment owns, create each trigger's
automation), deployed twice; then what ``prefect deployment inspect`` reads of them.

    deployment_triggers.py deploy --name N
    deployment_triggers.py emit

Prints one ``RESULT {json}``: ``{"deployment_ids", "related"}`` or ``{"event_id"}``, or ``{"error"}``."""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    out: dict = {}
    try:
        if sys.argv[1] == "deploy":
            from live_job import live_job
            from prefect import get_client
            from prefect.events import DeploymentEventTrigger

            name = sys.argv[sys.argv.index("--name") + 1]
            ids = []
            for _ in range(2):
                trigger = DeploymentEventTrigger(
                    name="on-order",
                    expect={"shop.order.placed"},
                    match={"prefect.resource.id": "shop.order.*"},
                    parameters={"x": "{{ event.payload.quantity }}"},
                )
                ids.append(str(live_job.to_deployment(name=name, triggers=[trigger]).apply()))
            out["deployment_ids"] = ids
            with get_client(sync_client=True) as client:
                related = client.read_resource_related_automations(f"prefect.deployment.{ids[0]}")
            out["related"] = [str(a.id) for a in related]
        else:
            from prefect.events import emit_event
            from prefect.events.worker import EventsWorker

            event = emit_event(
                event="shop.order.placed",
                resource={"prefect.resource.id": "shop.order.9"},
                payload={"quantity": 3},
            )
            out["event_id"] = str(event.id) if event else None
            EventsWorker.drain_all()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
