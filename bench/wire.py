"""Request bodies shaped like the ones the prefect 3.9.1 client sends (captures/a_seq.jsonl), and
small async helpers to create flows and flow runs on either server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from rawhttp import RawClient
from servers import Target

STATE_DETAIL_KEYS = (
    "flow_run_id",
    "task_run_id",
    "child_flow_run_id",
    "scheduled_time",
    "cache_key",
    "cache_expiration",
    "deferred",
    "untrackable_result",
    "pause_timeout",
    "pause_reschedule",
    "pause_key",
    "run_input_keyset",
    "refresh_cache",
    "retriable",
    "transition_id",
    "task_parameters_id",
    "traceparent",
    "deployment_concurrency_lease_id",
)


def _headers(target: Target) -> dict[str, str]:
    return {
        "User-Agent": "prefect/3.9.1 (API 0.8.4)",
        "X-PREFECT-API-VERSION": "0.8.4",
        **target.http_headers,
    }


def http_client(target: Target, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=target.api_url.rstrip("/") + "/", headers=_headers(target), **kwargs)


def timed_client(target: Target, kind: str, **kwargs):
    """The client of a timed loop: httpx, or the lean ``rawhttp.RawClient`` (same ``post(path,
    json=…)`` and response ``status_code``/``json()``/``text``)."""
    if kind == "httpx":
        return http_client(target, **kwargs)
    return RawClient(target.api_url, _headers(target))


class WireError(RuntimeError):
    def __init__(self, what: str, response: httpx.Response):
        self.status = response.status_code
        self.body = response.text[:1500]
        super().__init__(f"{what}: HTTP {self.status} {self.body}")


async def create_flow(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post("flows/", json={"name": name, "tags": [], "labels": {}})
    if r.status_code not in (200, 201):
        raise WireError("POST /flows/", r)
    return r.json()["id"]


def flow_run_body(flow_id: str) -> dict:
    return {
        "state": {
            "type": "PENDING",
            "name": "Pending",
            "message": None,
            "state_details": {"traceparent": None},
            "data": None,
        },
        "name": None,
        "flow_id": flow_id,
        "flow_version": "bench",
        "parameters": {"n": 40},
        "context": {},
        "parent_task_run_id": None,
        "empirical_policy": {"retries": 0, "retry_delay": 0},
        "tags": [],
    }


async def create_flow_run(client: httpx.AsyncClient, flow_id: str) -> dict:
    r = await client.post("flow_runs/", json=flow_run_body(flow_id))
    if r.status_code not in (200, 201):
        raise WireError("POST /flow_runs/", r)
    return r.json()


async def create_flow_runs(
    target: Target, flow_name: str, count: int, concurrency: int = 8
) -> tuple[str, list[dict]]:
    async with http_client(target, timeout=60.0) as client:
        flow_id = await create_flow(client, flow_name)
        sem = asyncio.Semaphore(concurrency)

        async def one() -> dict:
            async with sem:
                return await create_flow_run(client, flow_id)

        runs = await asyncio.gather(*(one() for _ in range(count)))
    return flow_id, list(runs)


def set_state_body(flow_run_id: str, state_type: str, name: str) -> dict:
    details = dict.fromkeys(STATE_DETAIL_KEYS)
    details.update(
        flow_run_id=flow_run_id,
        untrackable_result=state_type == "COMPLETED",
        pause_reschedule=False,
        transition_id=str(uuid.uuid4()),
    )
    return {
        "state": {"type": state_type, "name": name, "message": None, "state_details": details, "data": None},
        "force": False,
    }


# --------------------------------------------------------------------------------------------------
# Task-run events (as emitted by emit_task_run_state_change_event)
# --------------------------------------------------------------------------------------------------


def iso_z(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tagged_uuid(tag: str) -> str:
    """A random UUID whose first 8 hex digits are ``tag`` (so this run's rows can be counted)."""
    return tag + str(uuid.uuid4())[8:]


_TRANSITIONS = (
    ("PENDING", "Pending", None, None, 0),
    ("RUNNING", "Running", "PENDING", "Pending", 1),
    ("COMPLETED", "Completed", "RUNNING", "Running", 1),
)


def task_run_events(
    tag: str, *, flow_run: dict, flow_name: str, flow_id: str, start: datetime, index: int
) -> list[dict]:
    """The Pending, Running and Completed events of one task run of ``flow_run``."""
    task_run_id = tagged_uuid(tag)
    name = f"inc-{task_run_id[9:12]}"
    dynamic_key = str(uuid.uuid4())
    related = [
        {
            "prefect.resource.id": f"prefect.flow-run.{flow_run['id']}",
            "prefect.resource.role": "flow-run",
            "prefect.resource.name": flow_run.get("name") or "bench-run",
        },
        {
            "prefect.resource.id": f"prefect.flow.{flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow_name,
        },
    ]
    expected_start = start
    events = []
    follows = None
    for step, (stype, sname, ftype, fname, run_count) in enumerate(_TRANSITIONS):
        occurred = start + timedelta(microseconds=1000 * step)
        event_id = tagged_uuid(tag)
        task_run = {
            "name": name,
            "task_key": "inc-110f37b3",
            "dynamic_key": dynamic_key,
            "empirical_policy": {
                "max_retries": 0,
                "retry_delay_seconds": 0.0,
                "retries": 0,
                "retry_delay": 0,
            },
            "tags": [],
            "labels": {},
            "task_inputs": {"x": []},
            "run_count": run_count,
            "flow_run_run_count": run_count,
            "expected_start_time": iso_z(expected_start),
            "total_run_time": 0.0 if stype != "COMPLETED" else 0.00148,
        }
        if stype != "PENDING":
            task_run["start_time"] = iso_z(expected_start + timedelta(microseconds=1000))
        if stype == "COMPLETED":
            task_run["end_time"] = iso_z(occurred)
        validated = {"type": stype, "name": sname, "message": "", "state_details": {}, "data": None}
        if stype == "COMPLETED":
            validated["state_details"] = {"untrackable_result": True}
        events.append(
            {
                "occurred": iso_z(occurred),
                "event": f"prefect.task-run.{sname}",
                "resource": {
                    "prefect.resource.id": f"prefect.task-run.{task_run_id}",
                    "prefect.resource.name": name,
                    "prefect.run-count": str(run_count),
                    "prefect.state-message": "",
                    "prefect.state-name": sname,
                    "prefect.state-timestamp": occurred.isoformat(),
                    "prefect.state-type": stype,
                    "prefect.orchestration": "client",
                },
                "related": related,
                "payload": {
                    "intended": {"from": ftype, "to": stype},
                    "initial_state": None
                    if ftype is None
                    else {"type": ftype, "name": fname, "message": "", "state_details": {}},
                    "validated_state": validated,
                    "task_run": task_run,
                },
                "id": event_id,
                "follows": follows,
            }
        )
        follows = event_id
    return events


def now_utc() -> datetime:
    return datetime.now(UTC)
