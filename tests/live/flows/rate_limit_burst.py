"""A burst of API calls past the account's rate limit through the real client: ``BURST`` flows
created one after another (``POST flows/``), then read back (``POST flows/filter``). The client
must wait out each 429's ``Retry-After`` and carry on without raising. Prints one
``RESULT {json}``."""

from __future__ import annotations

import asyncio
import json
import os
import time

from prefect.client.orchestration import get_client


async def burst(count: int) -> dict:
    out: dict = {"created": []}
    started = time.monotonic()
    async with get_client() as client:
        for i in range(count):
            flow_id = await client.create_flow_from_name(f"burst-{i}")
            out["created"].append(str(flow_id))
    out["seconds"] = round(time.monotonic() - started, 2)
    return out


if __name__ == "__main__":
    try:
        result = asyncio.run(burst(int(os.environ["BURST"])))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(result, default=str), flush=True)
