"""The client's automation calls: create one with ``Automation(...).create()`` (the client's
``create_automation``), read it back by name and id, say hello, and read the worker metadata, the API version and the default result storage. ``AUTOMATION_NAME`` names it;
``AUTOMATION_DEPLOYMENT_ID`` (optional) adds a run-deployment action. Prints one ``RESULT {json}``."""

from __future__ import annotations

import asyncio
import json
import os
from uuid import UUID

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.events.actions import DoNothing, RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture

if __name__ == "__main__":
    out: dict = {}
    try:
        actions = [DoNothing()]
        if os.environ.get("AUTOMATION_DEPLOYMENT_ID"):
            actions.append(
                RunDeployment(
                    source="selected",
                    deployment_id=UUID(os.environ["AUTOMATION_DEPLOYMENT_ID"]),
                    parameters={"who": "{{ event.resource.id }}"},
                )  # fmt: skip
            )
        automation = Automation(
            name=os.environ["AUTOMATION_NAME"],
            description="from the live test",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                posture=Posture.Proactive,
                threshold=2,
                within=120,
            ),
            actions=actions,
        ).create()
        out["id"] = str(automation.id)
        read = Automation.read(name=os.environ["AUTOMATION_NAME"])
        out["read_by_name"] = str(read.id)
        out["read_by_id"] = Automation.read(id=automation.id).name
        out["within"] = read.trigger.within.total_seconds()
        with get_client(sync_client=True) as client:
            out["hello"] = client.hello().json()
            out["related"] = [
                str(a.id)
                for a in client.read_resource_related_automations(
                    f"prefect.deployment.{os.environ.get('AUTOMATION_DEPLOYMENT_ID', 'none')}"
                )
            ]

        async def meta() -> None:
            async with get_client() as client:
                metadata = await client.read_worker_metadata()
                out["worker_types"] = sorted(w["type"] for c in metadata.values() for w in c.values())
                out["api_version"] = await client.api_version()
                out["storage"] = str(
                    (await client.read_server_default_result_storage()).default_result_storage_block_id
                )

        asyncio.run(meta())
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
