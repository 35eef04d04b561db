"""The client's side of ``tests/live/test_automations_stack_live.py``: the steps in ``argv[1]`` (a
JSON list), run in order with the unmodified ``prefect`` client.

* ``{"slack": {"name": N, "url": U}}``: ``SlackWebhook(url=U).save(N)``, a notification block;
* ``{"create": {…an automation…}}``: ``create_automation`` (what ``prefect automation create``
  sends), each string ``"block:N"`` in it replaced by the id of the block saved as N;
* ``{"emit": {"event", "resource", "payload"?, "related"?}}``: ``emit_event``, over the client's
  events websocket;
* ``{"start_line": {"ready": R, "go": G}}``: send what was emitted so far, write the file R, then
  wait (60 s at most) until the file G exists: the test looks at the server in between, or starts
  several senders' bursts at one moment.

The events are sent before the script exits (``EventsWorker.drain_all``). Prints one ``RESULT
{"automations": {name: id}, "blocks": {name: id}, "emitted": n}`` or ``{"error": …}``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from prefect.blocks.notifications import SlackWebhook
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.schemas.automations import AutomationCore
from prefect.events.worker import EventsWorker


def _with_blocks(value, blocks: dict[str, str]):
    if isinstance(value, str) and value.startswith("block:"):
        return blocks[value.removeprefix("block:")]
    if isinstance(value, dict):
        return {k: _with_blocks(v, blocks) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_blocks(v, blocks) for v in value]
    return value


async def _create(body: dict) -> str:
    async with get_client() as client:
        return str(await client.create_automation(AutomationCore.model_validate(body)))


if __name__ == "__main__":
    out: dict = {"automations": {}, "blocks": {}, "emitted": 0}
    try:
        for step in json.loads(sys.argv[1]):
            if "slack" in step:
                block = SlackWebhook(url=step["slack"]["url"])
                out["blocks"][step["slack"]["name"]] = str(block.save(step["slack"]["name"]))
            elif "create" in step:
                body = _with_blocks(step["create"], out["blocks"])
                out["automations"][body["name"]] = asyncio.run(_create(body))
            elif "emit" in step:
                if emit_event(**step["emit"]) is None:
                    raise RuntimeError("emit_event sent nothing: no events client is configured")
                out["emitted"] += 1
            elif "start_line" in step:
                EventsWorker.drain_all()
                Path(step["start_line"]["ready"]).write_text("")
                go = Path(step["start_line"]["go"])
                deadline = time.monotonic() + 60
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
        EventsWorker.drain_all()
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(out, default=str), flush=True)
