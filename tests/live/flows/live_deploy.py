"""Creates deployments of ``live_job`` the ways a user does, for the deployment and worker tests.

    live_deploy.py serve  --name N [--global-limit K]
        ``live_job.serve(name=N)``: register the deployment, then run it until stopped.
    live_deploy.py apply  --name N
        ``live_job.to_deployment(N).apply()``: a deployment without a work pool (nothing runs it).
    live_deploy.py deploy --name N --source DIR --pool P [--interval S] [--cron C]
                          [--concurrency-limit K] [--parameters JSON]
        ``flow.from_source(DIR, "live_job.py:live_job").deploy(name=N, work_pool_name=P, …)``.

``apply`` and ``deploy`` print one ``RESULT {json}`` line: ``{"deployment_id"}``, or ``{"error"}``
(exit status 2) when the client raised.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback


def _result(payload: dict) -> None:
    print("RESULT " + json.dumps(payload, default=str), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "apply", "deploy"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--global-limit", type=int, default=None)
    parser.add_argument("--source")
    parser.add_argument("--pool")
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--cron", default=None)
    parser.add_argument("--concurrency-limit", type=int, default=None)
    parser.add_argument("--parameters", default=None)
    args = parser.parse_args()

    # Ctrl-C as a terminal delivers it: a process started from the test process can inherit SIGINT
    # ignored or blocked (by a library at work in that process when it forks), and then the
    # runner would never hear the Ctrl-C the test sends.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)

    if args.mode == "serve":
        from live_job import live_job

        print("SERVING", flush=True)
        live_job.serve(name=args.name, global_limit=args.global_limit)
        return

    try:
        if args.mode == "apply":
            from live_job import live_job

            deployment_id = live_job.to_deployment(name=args.name).apply()
        else:
            from prefect import flow
            from prefect.schedules import Cron, Interval

            schedules = []
            if args.interval is not None:
                schedules.append(Interval(args.interval))
            if args.cron is not None:
                schedules.append(Cron(args.cron))
            source_flow = flow.from_source(source=args.source, entrypoint="live_job.py:live_job")
            deployment_id = source_flow.deploy(
                name=args.name,
                work_pool_name=args.pool,
                schedules=schedules or None,
                concurrency_limit=args.concurrency_limit,
                parameters=json.loads(args.parameters) if args.parameters else None,
                print_next_steps=False,
            )
    except Exception as exc:
        traceback.print_exc()
        _result({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(2)
    _result({"deployment_id": str(deployment_id)})


if __name__ == "__main__":
    main()
