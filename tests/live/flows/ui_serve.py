"""A deployment with a schedule, served with ``flow.serve`` so a run started from the UI executes:

ui_serve.py --name N
"""

from __future__ import annotations

import argparse

from prefect import flow, get_run_logger


@flow(name="ui-served")
def ui_served(greeting: str = "hello") -> str:
    get_run_logger().info("served run says %s", greeting)
    return greeting


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    print("SERVING", flush=True)
    ui_served.serve(name=args.name, cron="0 6 * * *", tags=["ui"], description="Served for the UI test")
