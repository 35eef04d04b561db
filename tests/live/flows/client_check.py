"""The client's own health and version calls (``GET …/health``, ``GET …/admin/version``)."""

from __future__ import annotations

import asyncio
import json

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL


async def check() -> dict:
    async with get_client() as client:
        health = await client.api_healthcheck()
        version = await client.api_version()
        return {
            "api_url": PREFECT_API_URL.value(),
            "server_type": client.server_type.value,
            "health_error": repr(health) if health is not None else None,
            "version": version,
        }


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(check())), flush=True)
