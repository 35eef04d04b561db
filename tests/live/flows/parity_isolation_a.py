"""Workspace A's side of the isolation check: with the client, save a Secret block and a custom
block (its own type and schema), create a flow run with an input, an automation and a saved
search. Prints their ids (and the custom schema's checksum) on the RESULT line."""

from __future__ import annotations

import asyncio
import json
import os

from prefect import flow
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from pydantic import SecretStr

SECRET = os.environ["PARITY_SECRET"]


class ParityIsoCreds(Block):
    _block_type_name = "Parity Iso Creds"
    user: str
    password: SecretStr


@flow(name="parity-iso-flow")
def iso_flow() -> None:
    pass


async def main() -> dict:
    out: dict = {}
    secret_id = await Secret(value=SECRET).save("iso-secret")
    creds_id = await ParityIsoCreds(user="svc", password=SECRET).save("iso-creds")
    async with get_client() as client:
        secret = await client.read_block_document(secret_id)
        creds = await client.read_block_document(creds_id)
        out["block_documents"] = [str(secret_id), str(creds_id)]
        out["block_types"] = [str(secret.block_type_id), str(creds.block_type_id)]
        out["block_schemas"] = [str(secret.block_schema_id), str(creds.block_schema_id)]
        out["creds_checksum"] = creds.block_schema.checksum
        run = await client.create_flow_run(iso_flow)
        await client.create_flow_run_input(run.id, key="approval", value=json.dumps({"token": SECRET}))
        out["flow_run"] = str(run.id)
        automation_id = await client.create_automation(
            AutomationCore(
                name="parity-iso-automation",
                description=f"holds {SECRET}",
                trigger=EventTrigger(expect={"parity.iso"}, posture=Posture.Reactive, threshold=1),
                actions=[DoNothing()],
            )
        )
        out["automation"] = str(automation_id)
        saved = await client.request(
            "PUT",
            "/saved_searches/",
            json={
                "name": "parity-iso-search",
                "filters": [
                    {
                        "object": "flow",
                        "property": "name",
                        "type": "string",
                        "operation": "equals",
                        "value": SECRET,
                    }
                ],
            },  # fmt: skip
        )
        saved.raise_for_status()
        out["saved_search"] = saved.json()["id"]
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(main())), flush=True)
