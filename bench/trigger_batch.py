"""The cost of evaluating one stored batch of events against a workspace's automations, in-process
against a fresh PostgreSQL database (dropped at the end).

10 reactive automations (``threshold`` 25, ``within: 0``, each matching its own resources, action
``do-nothing``); batches of 5, 50 and 500 matching events dealt evenly over them, so 500 events fire
20 times (two per automation) and the smaller batches fire none. Each batch is stored first (with
the trigger engine unhooked), then timed through the engine's own entry point (``events_stored``,
what runs after a batch's commit): bucket locks and reads, the counting, the firings with their
``prefect.automation.triggered`` / ``…resolved`` events and resources, and the hand-off of each
firing's actions to Celery (queued in Redis, never run here). The windows are cleared before each
repetition, so every repetition starts from the same state. Median of ``--repeat`` (5) per size.

    .venv/bin/python bench/trigger_batch.py [--repeat 5] [--sizes 5,50,500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
import uuid

from inprocess import add_database_arguments, run_in_fresh_database

AUTOMATIONS = 10
THRESHOLD = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="5,50,500")
    add_database_arguments(parser)
    run_in_fresh_database(parser.parse_args(), run, prefix="bench_trg")


def run(args) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.models import User
    from accounts.tenancy import account_create, workspace_create
    from audit.actors import SYSTEM
    from orchestration.events import services as event_services
    from orchestration.models import AutomationBucket, AutomationFiring, Event
    from orchestration.schemas.automations import AutomationCreate
    from orchestration.services import triggers
    from orchestration.services.automations import automation_create
    from tenants.scoping import workspace_scope

    owner = User.objects.create_user("owner@bench.example")
    account = account_create(name="Bench", owner=owner, actor=SYSTEM, plan="enterprise")
    workspace = workspace_create(account=account, name="Triggers", actor=SYSTEM)
    ws = workspace.id
    with workspace_scope(ws):
        for i in range(AUTOMATIONS):
            automation_create(
                data=AutomationCreate.model_validate(
                    {
                        "name": f"bench {i}",
                        "trigger": {
                            "type": "event",
                            "posture": "Reactive",
                            "match": {"prefect.resource.id": f"bench.{i}.*"},
                            "expect": ["bench.tick"],
                            "threshold": THRESHOLD,
                            "within": 0,
                        },
                        "actions": [{"type": "do-nothing"}],
                    }
                ),
                actor=SYSTEM,
            )

    def stored_batch(size: int) -> list[Event]:
        base = timezone.now()
        raw = [
            {
                "id": str(uuid.uuid4()),
                "occurred": (base + dt.timedelta(milliseconds=n)).isoformat(),
                "event": "bench.tick",
                "resource": {"prefect.resource.id": f"bench.{n % AUTOMATIONS}.{n}"},
                "related": [],
                "payload": {},
            }
            for n in range(size)
        ]
        listeners = list(event_services._stored_listeners)
        event_services._stored_listeners.clear()  # stored without evaluation: that is timed below
        try:
            return event_services.events_store(workspace_id=ws, events=map(event_services.event_parse, raw))
        finally:
            event_services._stored_listeners.extend(listeners)

    print(f"\nOne stored batch through the trigger engine: {AUTOMATIONS} automations, threshold {THRESHOLD}")
    print(f"PostgreSQL, load average {os.getloadavg()[0]:.2f} at start; median of {args.repeat}")
    stored_batch(5)  # warm up: the automations memo, the connection
    for size in (int(s) for s in args.sizes.split(",")):
        seconds, fired, queries = [], set(), set()
        for _ in range(args.repeat):
            AutomationBucket.objects.unscoped().filter(workspace_id=ws).delete()
            batch = stored_batch(size)
            before = AutomationFiring.objects.unscoped().filter(workspace_id=ws).count()
            triggers.workspace_triggers(ws)
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                triggers.events_stored(ws, batch)
                seconds.append(time.perf_counter() - started)
            fired.add(AutomationFiring.objects.unscoped().filter(workspace_id=ws).count() - before)
            queries.add(len(captured))
        print(
            f"  {size:4d} matching events: {statistics.median(seconds) * 1000:8.1f} ms"
            f"  (min {min(seconds) * 1000:.1f}, max {max(seconds) * 1000:.1f}),"
            f" firings {sorted(fired)}, statements {sorted(queries)}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
