"""A workspace worth looking at in Prefect's UI, made by the real client: a work pool, a Secret
block, a variable, an automation, an event, and a flow run with a subflow, task runs, logs and
artifacts. Prints ``RESULT {"flow_run_id", "child_flow_run_id", ...}``."""

from __future__ import annotations

import asyncio
import json

from prefect import flow, get_client, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.automations import Automation
from prefect.blocks.system import Secret
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events import emit_event
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.runtime import flow_run
from prefect.variables import Variable

SEEN: dict = {}


@task
def square(x: int) -> int:
    get_run_logger().info("squaring %s", x)
    return x * x


@flow(name="ui-child")
def child(x: int) -> int:
    SEEN["child_flow_run_id"] = str(flow_run.get_id())
    get_run_logger().info("child got %s", x)
    return sum(square.map([x, x + 1]).result())


@flow(name="ui-parent")
def parent(n: int = 3) -> int:
    SEEN["flow_run_id"] = str(flow_run.get_id())
    logger = get_run_logger()
    logger.info("parent starts with %s", n)
    first = square.submit(n).result()
    below = child(first)
    create_markdown_artifact(key="ui-report", markdown="# Report\n\nAll **good**.", description="A report")
    create_table_artifact(key="ui-table", table=[{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    create_link_artifact(key="ui-link", link="https://example.com/", link_text="Example")
    logger.warning("parent done: %s", below)
    return below


async def _pool() -> None:
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name="ui-pool", type="process"))


def main() -> None:
    asyncio.run(_pool())
    Secret(value="s3cr3t-value").save("ui-secret", overwrite=True)
    Variable.set("ui_var", {"threshold": 5}, overwrite=True)
    automation = Automation(
        name="ui-automation",
        trigger=EventTrigger(expect={"prefect.flow-run.Failed"}, posture=Posture.Reactive, threshold=1),
        actions=[DoNothing()],
    ).create()
    emit_event(event="ui.test.happened", resource={"prefect.resource.id": "ui.test.thing"})
    state = parent(return_state=True)
    print(
        "RESULT " + json.dumps({**SEEN, "automation_id": str(automation.id), "type": state.type.value}),
        flush=True,
    )


if __name__ == "__main__":
    main()
